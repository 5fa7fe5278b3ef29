"""Adapters: one module per thing they talk to."""
