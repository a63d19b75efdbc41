"""What every activity needs from its worker process: settings, storage, identity.

The worker builds one ``Runtime`` from its settings and hands it to each activity
class it registers (``Activities``), as the SDK samples inject a database client: an
activity reads nothing from module globals, and a test builds its own. Activities
never receive secrets in their payloads; they read them here, on the machine that
runs them.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.contracts.gpu_profiles import GpuProfile, worker_profile
from core.service.settings import Settings

if TYPE_CHECKING:  # boto3 is loaded by the first activity that uses storage, not by importing this
    from core.store.objects import ObjectStore


class WorkerHealth:
    """Whether this process can still do its work. A step stuck in a call that never
    returns (a hung CUDA kernel, a dead network disk) holds its slot and its memory until
    the process ends, whatever Temporal does with the attempt: the worker then leaves
    (exit 1, ``workers/worker.py``) and its supervisor starts a fresh one."""

    def __init__(self) -> None:
        self.unhealthy = threading.Event()
        self.reason = ""

    def fail(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.unhealthy.set()


@dataclass
class Runtime:
    settings: Settings
    gpu_class: str = "cpu"
    health: WorkerHealth = field(default_factory=WorkerHealth)

    @cached_property
    def profile(self) -> GpuProfile:
        """This worker's batch sizes: the class's profile, with settings overrides."""
        return worker_profile(
            self.gpu_class, self.settings.embedding_batch_size, self.settings.segmentation_batch_size
        )

    @cached_property
    def memory_limit_mib(self) -> float:
        """This worker's memory: the setting, else its container's limit, else the machine's."""
        from core.service import memory

        return self.settings.memory_limit_mib or memory.limit_mib()

    @cached_property
    def store(self) -> ObjectStore:
        from core.store.objects import ObjectStore

        return ObjectStore(self.settings, ride_out_s=self.settings.storage_ride_out_s)

    @cached_property
    def worker_id(self) -> str:
        return self.settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


class Activities:
    """Base of the activity classes: each is built by the worker with its ``Runtime``.
    Their ``@activity.defn`` methods are called by reference from the workflows
    (``workflow.execute_activity_method``); the worker registers them bound."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt


def bind(method: Callable[..., Any], instances: Iterable[Activities]) -> Callable[..., Any]:
    """``method`` (as the workflows name it, on its class) bound to the one instance
    whose class defines or inherits it: two would register one activity name twice."""
    found = [i for i in instances if getattr(type(i), method.__name__, None) is method]
    if not found:
        raise LookupError(f"no activity instance defines {method.__qualname__}")
    if len(found) > 1:
        raise LookupError(f"{method.__qualname__} is an activity of {len(found)} instances")
    return getattr(found[0], method.__name__)  # type: ignore[no-any-return]
