"""Contracts: what crosses a boundary, typed.

The payloads between starter, workflows, activities and storage (a video's spec, stage
results and outcome; a batch's; an export's; the metadata.json commit marker), the ids
and names they are found by (workflow ids, stages, queues, search attributes, errors),
and the policies an operator sets (usable segments, clips, the source breaker, GPU
profiles). Plain pydantic and the standard library: the workflows import this package
and nothing heavier, and every other package of core builds on it.
"""
