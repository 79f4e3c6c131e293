"""After the crash: finding the saved dumps, their analyses and their grouping by cause."""
