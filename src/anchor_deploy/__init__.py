"""anchor-deploy: immutable deployments, instant rollback and custom domains on your own box."""

__version__ = "0.1.0"
