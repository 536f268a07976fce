"""Fetching model files: downloads through the configured proxy and TLS settings, and `cortex pull`."""
