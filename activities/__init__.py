"""Temporal activities: thin wrappers (heartbeat, error mapping, storage keys) around
the plain functions in ``core``. One module per stage; ``ALL`` is what a worker
registers."""
