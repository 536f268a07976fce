"""Operating the process: logging, metrics, systemd notification, mount points."""
