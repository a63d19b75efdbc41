"""Fault injection for tests and chaos runs: faults only, never fake results.

``PIPELINE_FAULT_OOM_ABOVE_BATCH=N`` makes the real batching code raise
``torch.cuda.OutOfMemoryError`` for any batch larger than N (0: every batch), exactly
where a GPU would, so the OOM handling (halving, escalation) runs for real on a CPU
machine. Unset in production.
"""

from __future__ import annotations

import os


def check_batch_memory(batch_size: int) -> None:
    limit = os.environ.get("PIPELINE_FAULT_OOM_ABOVE_BATCH")
    if limit is not None and batch_size > int(limit):
        import torch

        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory (injected by PIPELINE_FAULT_OOM_ABOVE_BATCH={limit}, batch {batch_size})"
        )
