"""The pipeline's own code, by domain; activities, workflows, workers and the starter
build on it, and it imports none of them.

From the bottom up (each package imports only those below it; ``make check`` holds this,
pyproject.toml ``[tool.importlinter]``):

- ``contracts``: what crosses a boundary, typed (payloads, ids, names, policies);
- ``service``: settings, logs, metric names, exit codes, the Temporal connection;
- ``analysis``: audio decoding and the models (diarization, embeddings, music, labels);
- ``store``: object storage, its layout, what a commit writes and reading it back;
- ``sources``: reaching a video's URL safely and downloading its audio;
- ``training``: examples and shards cut from committed videos.
"""
