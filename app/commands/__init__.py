"""CLI command groups; each module exposes ``cli`` (a Typer app) and imports no torch at module level."""
