"""CUDA out of memory: how a model stage recognises it, what it frees, the batch it tries next.

One home for the three steps of the halving policy, so that the chunked stages
(``activities/model_stage.py``, inside a Temporal activity) and the GPU check
(``benchmarks/gpu_check.py``, on a lent GPU machine without Temporal or storage) run the
same code against a real CUDA out-of-memory error.
"""

from __future__ import annotations


def is_cuda_oom(exc: BaseException) -> bool:
    """torch's own OOM class, or an error that carries its message (some kernels raise a
    plain RuntimeError saying so)."""
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(exc)


def free_gpu_memory() -> None:
    """Drop what the failed batch left: its tensors once unreferenced, then the cached
    blocks, so the next, smaller batch starts from an empty allocator."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def halved(batch_size: int) -> int:
    """The batch after an OOM at ``batch_size``; 0 means not even one item fits."""
    return batch_size // 2
