"""The HTTP side: the app built from a Cortexfile, its middleware, service endpoints and listener."""
