"""Scheduled work: the jobs, the one leader among scheduler processes, and its heartbeat."""
