"""Running as a service: the state lock, the capture-kernel run, retention, test ids,
the final and failure actions, and what systemd and the journal are told."""
