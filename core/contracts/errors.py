"""Typed pipeline errors.

Each class name becomes the Temporal ``ApplicationError.type`` (see
``activities/errors.py``), the ErrorType search attribute and the key in
``starter status``. ``retryable`` is the one place that decides whether a failure is
worth another attempt; the retry policies in ``workflows/policies.py`` list the
non-retryable names derived from it here.
"""

from __future__ import annotations

from typing import Any


class PipelineError(Exception):
    retryable = False

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details  # JSON-able, carried in the ApplicationError (e.g. a chunk run's progress)


# --- permanent: the input itself is bad -------------------------------------------
class VideoUnavailable(PipelineError):
    """The source answers 404/410, or the video was removed."""


class VideoPrivate(PipelineError):
    """The source refuses access (403, private, members-only, geo-blocked)."""


class AgeRestricted(PipelineError):
    """The source asks the viewer to sign in to confirm their age: no anonymous worker
    will ever get it, unlike a bot check (SourceBlocked), which passes with time."""


class UnsafeSource(PipelineError):
    """The URL, or a redirect it answers with, leads to an address the pipeline never
    fetches from (private, link-local, metadata, loopback outside the embedded
    default): ``core/sources/safety.py``. Refused before any connection is opened."""


class InvalidMedia(PipelineError):
    """What was downloaded is not audio/video ffmpeg can decode."""


class EmptyMedia(PipelineError):
    """The file decodes to no samples."""


class SilentAudio(PipelineError):
    """The audio decodes, but its peak is below the silence threshold."""


class TooLong(PipelineError):
    """Longer than settings.max_duration_s."""


class TooLarge(PipelineError):
    """The source is more bytes than a download may take (settings.max_download_mb)."""


class NotSingleVideo(PipelineError):
    """The URL is a playlist, channel or feed: one row must be one episode."""


class LiveStream(PipelineError):
    """A live, upcoming or just-ended stream: only finished recordings are taken."""


class ConfigurationError(PipelineError):
    """This worker is set up wrong (a model it cannot load): no other attempt on this
    node would do better. The worker refuses to start, so it takes no tasks."""


class GpuMemoryExhausted(PipelineError):
    """CUDA OOM even at batch size 1: this GPU class cannot take the video; the
    workflow moves it to the next larger class."""


class HostMemoryExhausted(PipelineError):
    """A model stage found its worker's resident memory past its guard (a share of the
    container's limit) before a chunk: this class's machines cannot take the video; the
    workflow moves it to the next larger class, as after GpuMemoryExhausted, instead of
    the kernel killing the worker and every stage in it."""


class NoWorkerForClass(PipelineError):
    """No worker took a stage from its queue within the job's queue timeout: nobody
    serves the video's GPU class (start a worker of that class). Raised by the workflow."""


class VideoIdConflict(PipelineError):
    """The video id is already committed for a different URL: ids name one video."""


class IntermediateMismatch(PipelineError):
    """What a stage result names in storage is not what the stage reported (a sha256
    or a row count differs): the commit refuses it rather than commit mixed files."""


class StoreUnsafe(PipelineError):
    """The object store ignores conditional writes (If-None-Match), on which the
    commit marker relies: the worker and the starter refuse to run on it."""


class AttemptSuperseded(PipelineError):
    """This attempt's video was committed by another attempt meanwhile: its late
    writes are removed and it stops."""


# --- transient: try again later ---------------------------------------------------
class RateLimited(PipelineError):
    """HTTP 429 from the source: back off for long."""

    retryable = True


class NetworkError(PipelineError):
    """Connection reset, timeout, truncated body, 5xx from the source."""

    retryable = True


class SourceBlocked(PipelineError):
    """The source asks for proof of being human (bot check, sign-in or consent wall):
    fleet weather, not the video's fault. Retried after a cool-down."""

    retryable = True


class SourceTooSlow(PipelineError):
    """The transfer dripped under the minimum rate, or ran past its time limit."""

    retryable = True


class Stalled(PipelineError):
    """A step stopped making progress (no new decoded second, no byte, no chunk) for
    longer than its bound, or ran far past the deadline its work scales to: the attempt
    gave up its slot and another attempt runs the step again."""

    retryable = True


class ScratchFull(PipelineError):
    """The worker's scratch disk cannot hold the two WAV copies: another worker may."""

    retryable = True


class StorageUnavailable(PipelineError):
    """The object store did not answer or answered 5xx."""

    retryable = True


class WorkerShutdown(PipelineError):
    """The worker is draining (SIGTERM, spot eviction): the stage stopped at a
    checkpoint and another worker resumes it from there."""

    retryable = True


class ClaimContended(PipelineError):
    """Other claimers kept taking the claim log's next number before this one could:
    the next attempt reads on and claims again."""

    retryable = True


class CudaOutOfMemory(PipelineError):
    """CUDA OOM at a batch size above 1: the stage recorded the halved batch in its
    progress and the retry resumes with it (``GpuMemoryExhausted`` at batch 1)."""

    retryable = True


def _concrete_errors(base: type[PipelineError] = PipelineError) -> list[type[PipelineError]]:
    found: list[type[PipelineError]] = []
    for cls in base.__subclasses__():
        found += [cls, *_concrete_errors(cls)]
    return found


PERMANENT_ERRORS: tuple[type[PipelineError], ...] = tuple(c for c in _concrete_errors() if not c.retryable)


NON_RETRYABLE_ERROR_TYPES: list[str] = [cls.__name__ for cls in PERMANENT_ERRORS]

# the source pushing back on the fleet, not failing one video: the video waits a
# cool-down and its batch's breaker counts them (models.SourceBreaker)
SOURCE_SIDE_ERRORS: tuple[type[PipelineError], ...] = (RateLimited, SourceBlocked)
SOURCE_SIDE_ERROR_TYPES: list[str] = [cls.__name__ for cls in SOURCE_SIDE_ERRORS]
