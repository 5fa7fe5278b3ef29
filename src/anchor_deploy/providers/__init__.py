"""Providers: one assembly of adapters and services per place the platform runs (local: this machine)."""
