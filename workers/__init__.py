"""The worker process: one per machine, polling the queues its hardware can serve."""
