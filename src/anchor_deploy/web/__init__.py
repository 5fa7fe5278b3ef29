"""The dashboard: server-rendered pages under /ui, served by the API process (see docs/dashboard.md)."""
