"""Facts about a machine, read through one view rooted at / or at a snapshot."""
