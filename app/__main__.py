"""``python -m app ...`` is the ``autodistiller`` command."""

from app.cli import main

if __name__ == "__main__":
    main()
