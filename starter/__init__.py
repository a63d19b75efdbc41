"""The operator CLI: start a batch from a CSV, watch it."""
