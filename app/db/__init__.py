"""SQL persistence: table definitions, engine creation and migrations."""
