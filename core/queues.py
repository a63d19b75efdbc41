"""Task queue names: the one place that spells them.

Workflows run on ``<prefix>-workflows``; downloads on ``<prefix>-download`` (CPU, the
fleet-wide rate limit lives on this queue); uploads on ``<prefix>-upload``; the model
stages on ``<prefix>-gpu-<class>`` so a video only lands on a machine whose GPU can
hold it. A machine without a GPU is class ``cpu``.
"""

from __future__ import annotations


def workflow_queue(prefix: str) -> str:
    return f"{prefix}-workflows"


def download_queue(prefix: str) -> str:
    return f"{prefix}-download"


def upload_queue(prefix: str) -> str:
    return f"{prefix}-upload"


def gpu_queue(prefix: str, gpu_class: str) -> str:
    return f"{prefix}-gpu-{gpu_class}"
