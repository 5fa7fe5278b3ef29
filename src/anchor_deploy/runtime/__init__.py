"""Files that run inside an app's own environment (not imported by the platform)."""
