"""The embedded default stack (Temporal dev server, S3-compatible store, media server,
worker) used by ``make demo`` and the integration tests."""
