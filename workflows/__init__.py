"""Deterministic workflow code only: no ML, no boto3, no I/O."""
