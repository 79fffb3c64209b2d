"""Machinery the tests share: free ports, waiting, the daemon as a process, a webhook receiver, PgBouncer."""
