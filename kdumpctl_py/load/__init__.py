"""Acting on the kernel: the system calls that load and unload a capture kernel."""
