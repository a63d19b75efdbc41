"""Training: examples cut from committed videos for the training data export.

Single-speaker clips and long multi-speaker windows (``clips``) and the shard formats the
consumers read (``shards``: Lhotse Shar, WebDataset).
"""
