"""What every model stage does around its own work: reuse or run in chunks.

A model stage (diarize, music, embed, labels) works on one input, named by the attempt
ids of the stages it reads. If an earlier attempt already stored its result for that
input (its reply to the workflow may have been lost), that result is returned as it is.
Otherwise this attempt computes in checkpointed chunks (``activities/chunks.py``),
writes its result under its own attempt id through fenced writes
(``activities/fencing.py``), and returns the summary. A stage module keeps only what is
its own: what one chunk computes and what its result holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from pydantic import BaseModel
from temporalio import activity

from activities.attempts import StageContext, stage
from activities.chunks import ChunkRun, run_chunks
from activities.fencing import FencedWrites, attempt_id, reusable_result
from activities.runtime import Activities, Runtime
from activities.scratch import scratch_dir
from core.contracts.stages import Stage
from core.contracts.video import AudioRef, StageSummary
from core.store.layout import VideoKeys

Result = TypeVar("Result", bound=BaseModel)
Summary = TypeVar("Summary", bound=StageSummary)
RESULT_SUMMARY = "summary"  # the field of a finished result file that holds its summary


@dataclass
class StageAttempt:
    """One attempt of a model stage that has work to do."""

    stage: Stage
    source: str  # what the input is: the attempt ids of the results it reads
    ctx: StageContext
    rt: Runtime
    keys: VideoKeys
    writes: FencedWrites
    attempt_id: str = field(default_factory=attempt_id)
    started: float = field(default_factory=time.perf_counter)

    @property
    def folder(self) -> str:
        """Where this input's chunk checkpoints and every attempt's results live."""
        return self.keys.stage_dir(self.stage, self.source)

    def key(self, name: str) -> str:
        """A result file of this attempt (its own key: overlapping attempts never share one)."""
        return self.keys.attempt_key(self.stage, self.source, self.attempt_id, name)

    def load_audio(self, audio: AudioRef) -> tuple[np.ndarray, int]:
        """The 16 kHz analysis audio, in memory (its scratch copy is gone on return);
        the stage's seconds count from here (its compute)."""
        from core.analysis.audio import load_wav  # numpy and soundfile: loaded where audio is

        with scratch_dir(self.rt, audio.video_id) as scratch:
            samples, rate = load_wav(
                self.rt.store.download_file(audio.analysis_key, scratch / "analysis_16k.wav")
            )
        self.started = time.perf_counter()
        self.ctx.audio_s = len(samples) / rate
        return samples, rate

    def chunks(
        self, num_chunks: int, compute: Callable[[int, int], dict[str, np.ndarray]], initial_batch: int
    ) -> ChunkRun:
        """``compute(index, batch_size)`` for each chunk, resumed from the stored ones."""
        return run_chunks(
            self.rt, self.stage, self.folder, num_chunks, compute, initial_batch, self.ctx, self.writes
        )

    def summary(self, run: ChunkRun, key: str) -> dict[str, Any]:
        """The fields every stage result carries (``core.contracts.video.StageSummary``)."""
        progress = run.progress
        return {
            "key": self.key(key),
            "attempt_id": self.attempt_id,
            "worker_id": self.rt.worker_id,
            "seconds": round(time.perf_counter() - self.started, 3),
            "attempt": activity.info().attempt,
            "batch_sizes": progress.batch_sizes_tried if progress else [],
            "oom_count": progress.oom_count if progress else 0,
            "chunks_computed": len(run.computed),
        }

    def finish(self, result: Summary, key: str | None = None, **bulk: Any) -> Summary:
        """Write the file that marks this attempt finished (``result.key`` unless named),
        last: the summary that ``reuse_or_run`` returns beside the stage's bulk."""
        self.writes.put_json(key or result.key, {RESULT_SUMMARY: result.model_dump(), **bulk})
        return result


class ModelStage(Activities, Generic[Result]):
    """A model stage's activities: ``reuse_or_run`` around what the stage computes.
    A subclass names its stage, the file its finished attempt writes last, and that
    file's summary type."""

    stage: Stage
    result_file: str
    result_type: type[Result]

    def reuse_or_run(self, video_id: str, source: str, work: Callable[[StageAttempt], Result]) -> Result:
        """The stored result for this input (``result_file``, written last by an
        attempt that finished), or ``work``'s. ``source`` names the input: a new
        attempt of an upstream stage is new input, so nothing stale is reused."""
        rt, name = self.rt, self.stage
        keys = rt.store.keys(video_id)
        with stage(rt, name, video_id, watch_progress=True) as ctx:
            done = reusable_result(rt.store, keys.stage_dir(name, source), self.result_file)
            if done is not None:
                ctx.log.info(f"{name}.reused")
                return self.result_type.model_validate(done[RESULT_SUMMARY])
            return work(StageAttempt(name, source, ctx, rt, keys, FencedWrites(rt.store, keys)))
