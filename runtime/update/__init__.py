"""A device that updates itself: signed A/B updates of the whole image (runtime/update/agent.py says how)."""
