"""HTTP routes, one module per resource; thin: validate, call one service, return a schema."""
