"""Request and response schemas, one family per resource (``XCreate`` in, ``XPublic`` out,
``XsPublic`` = ``data`` + ``count``). Routes never return ORM rows or domain objects directly."""
