"""The `anchor` command line. It talks to the API over HTTP, never to the database."""
