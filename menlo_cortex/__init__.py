"""Cortex: put an LLM on any device from one declarative Cortexfile."""

__version__ = "0.1.0"
