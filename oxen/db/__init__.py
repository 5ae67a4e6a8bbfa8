"""The repository database (SQLite): schema, named-tuple rows, batched async access."""
