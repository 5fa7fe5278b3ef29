"""Use cases. They talk to ports only: no SDK, no HTTP client, no sqlite3, no subprocess."""
