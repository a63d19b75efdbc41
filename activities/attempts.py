"""One attempt of an activity, as every activity runs it (``stage``): its log context,
its heartbeats (``activities/heartbeat.py``), its progress watch, the mapping of typed
pipeline errors to the ApplicationErrors the operator sees, and its metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities import metrics
from activities.heartbeat import Heartbeater, StallInterrupt, heartbeat_interval
from activities.runtime import Runtime
from core.contracts.errors import PipelineError, Stalled
from core.service import memory


@dataclass
class StageContext:
    log: structlog.stdlib.BoundLogger
    heart: Heartbeater
    audio_s: float = 0.0  # audio the stage processed (set by it; 0 when it reused a result)
    memory: memory.Watch = field(default_factory=memory.watch)  # the process's, while this runs

    def memory_fields(self) -> dict[str, float]:
        """The StageSummary fields of the worker's resident memory while this ran."""
        return {"rss_start_mib": round(self.memory.start_mib, 1), "peak_rss_mib": self.memory.peak_mib()}


@contextlib.contextmanager
def stage(
    rt: Runtime, name: str | None = None, video_id: str | None = None, watch_progress: bool = False
) -> Iterator[StageContext]:
    """Bind log context, keep the activity heartbeating, and map typed errors.

    ``name`` is a video's stage (``core.contracts.stages.Stage``); any other activity goes by its
    own name, so log lines and metric labels spell it as the worker registered it.
    ``watch_progress`` (a sync activity whose details are its progress): a step whose
    progress stops for ``settings.stall_s`` fails ``Stalled`` (see ``Heartbeater``).

    Typed pipeline errors become ApplicationErrors whose ``type`` is the class name
    (the ErrorType the operator sees). Each outcome lands in the worker's metrics.
    """
    info = activity.info()
    name = name or info.activity_type
    log = structlog.get_logger("activity").bind(
        workflow_id=info.workflow_id,
        **({"video_id": video_id} if video_id else {}),
        activity=name,
        attempt=info.attempt,
        worker_id=rt.worker_id,
    )
    heart = Heartbeater(
        heartbeat_interval(info),
        stall_s=rt.settings.stall_s if watch_progress else None,
        on_stuck=rt.health.fail,
        log=log,
    )
    if not info.is_local:  # a local activity (the commit) lives and dies with its workflow task
        heart.start()
    started = time.perf_counter()
    log.info("stage.started")
    ctx = StageContext(log, heart)
    try:
        yield ctx
        seconds = time.perf_counter() - started
        log.info("stage.done", seconds=round(seconds, 3), peak_rss_mib=ctx.memory.peak_mib())
        if ctx.audio_s:
            metrics.record_stage_done(name, rt.gpu_class, ctx.audio_s, seconds)
    except (PipelineError, StallInterrupt) as caught:
        from activities.errors import to_application_error

        exc = (
            caught
            if isinstance(caught, PipelineError)
            else Stalled(f"no progress for {rt.settings.stall_s:.0f} s (at {heart.details})")
        )
        log.warning("stage.failed", error_type=type(exc).__name__, error=str(exc))
        metrics.record_stage_failed(name, rt.gpu_class, type(exc).__name__)
        raise to_application_error(exc, rt.settings.rate_limit_backoff_s) from None
    except BaseException as exc:
        error_type = exc.type if isinstance(exc, ApplicationError) and exc.type else type(exc).__name__
        if isinstance(exc, CancelledError):  # Temporal gave this attempt up (timed out, or cancelled)
            details = activity.cancellation_details()
            log.warning(
                "stage.cancelled",
                reason=_cancel_reason(details),
                seconds=round(time.perf_counter() - started, 3),
            )
        else:
            log.warning("stage.failed", error_type=error_type, error=str(exc)[:300])
        metrics.record_stage_failed(name, rt.gpu_class, error_type)
        raise
    finally:
        heart.stop()
        memory.done(ctx.memory)


def _cancel_reason(details: activity.ActivityCancellationDetails | None) -> str:
    if details is None:
        return "unknown"
    flags = ("not_found", "cancel_requested", "paused", "timed_out", "worker_shutdown", "reset")
    return ",".join(f for f in flags if getattr(details, f, False)) or "unknown"
