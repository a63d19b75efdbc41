"""Temporal activities: thin wrappers (heartbeat, error mapping, storage keys) around
the plain functions in ``core``. One module per stage; which queue each is served on
is the stage table's (``workflows/stages.py``), read by ``workers/worker.py``."""
