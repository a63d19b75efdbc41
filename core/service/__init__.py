"""Service: the process around the work.

Settings read from the environment, structured logs, the metric names, exit codes, the
Temporal client connection, and the fault injection tests and chaos runs use. Every
worker, the starter and the tools read them; they know nothing of audio or storage.
"""
