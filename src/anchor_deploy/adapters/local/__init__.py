"""The local provider: one machine, Caddy at the edge, SQLite and files on disk, sandboxed workers."""
