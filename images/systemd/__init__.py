"""`cortex build --format systemd`: a hardened systemd service bundle (see bundle.build)."""
