"""The HTTP API (FastAPI). Routes are thin: parse, authenticate, call a service, serialize."""
