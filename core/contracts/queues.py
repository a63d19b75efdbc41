"""Task queue names: the one place that spells them.

Workflows run on ``<prefix>-workflows``, and so do the short CPU activities (batch page
reads, manifests): an activity on the workflow's own queue is handed back with the
workflow task that scheduled it (eager dispatch), never waiting on a poll. A video's
commit goes further: it runs as a local activity of the workflow worker. Downloads
have ``<prefix>-download`` (CPU): the fleet-wide rate limit lives on that queue, and
only matching enforces it, so they must never be dispatched eagerly. Exports (cutting
and packing shards, CPU-bound) have ``<prefix>-export``, served beside the downloads. Claims
on a video's audio have ``<prefix>-claims``: the worker that serves it keeps the index of
every claimed fingerprint in memory, so a large fleet serves it on one or two CPU workers
(settings.serve_claims). The model stages
run on ``<prefix>-gpu-<class>`` so a video only lands on a machine whose GPU can hold
it. A machine without a GPU is class ``cpu``.
"""

from __future__ import annotations

# Light activities (the committed check, the commit, page reads, manifests, export
# indexes) a CPU worker runs at once, and as many local ones: what the deployment's
# worker pods and the fleet projection (benchmarks/fleet.py) count with.
CPU_LIGHT_SLOTS = 16


def workflow_queue(prefix: str) -> str:
    return f"{prefix}-workflows"


def download_queue(prefix: str) -> str:
    return f"{prefix}-download"


def gpu_queue(prefix: str, gpu_class: str) -> str:
    return f"{prefix}-gpu-{gpu_class}"


def export_queue(prefix: str) -> str:
    return f"{prefix}-export"


def claim_queue(prefix: str) -> str:
    return f"{prefix}-claims"
