"""diarize_audio: analysis audio -> speaker turns (bulk in storage, summary in payload).

Backends that split into per-chunk feature extraction and a global step (the default
``pretrained`` backend: local segmentation and embeddings per chunk, clustering at the
end) checkpoint every ``chunk_s`` of audio, so a kill costs at most one chunk; a
whole-recording backend (pyannote) is one chunk, still with OOM halving of its batch
sizes.
"""

from __future__ import annotations

import math
import time

import numpy as np
from temporalio import activity

from activities.chunks import run_chunks
from activities.fencing import FencedWrites, attempt_id, reusable_result
from activities.runtime import load_analysis_audio, runtime, scratch_dir, stage
from core import faults
from core.diarization import DiarizationOutput, get_diarization_backend
from core.models import AudioRef, DiarizationResult, Segment

STAGE = "diarize"
RESULT = "diarization.json"  # summary, segments and uncertain spans of one attempt


@activity.defn(name="diarize_audio")
def diarize_audio(audio: AudioRef) -> DiarizationResult:
    rt = runtime()
    keys = rt.store.keys(audio.video_id)
    folder = keys.stage_dir(STAGE, audio.attempt_id)
    with stage(STAGE, audio.video_id) as ctx:
        done = reusable_result(rt.store, folder, RESULT)
        if done is not None:
            ctx.log.info("diarize.reused")
            return DiarizationResult.model_validate(done["summary"])
        me = attempt_id()
        writes = FencedWrites(rt.store, keys)
        backend = get_diarization_backend(rt.settings)
        with scratch_dir(audio.video_id) as tmp:
            samples, rate = load_analysis_audio(audio, tmp)
        started = time.perf_counter()
        duration = len(samples) / rate
        if hasattr(backend, "extract"):
            chunk_s = rt.settings.chunk_s
            run = run_chunks(
                STAGE,
                folder,
                max(1, math.ceil(duration / chunk_s)),
                lambda i, batch: backend.extract(samples, rate, i * chunk_s, (i + 1) * chunk_s, batch),
                rt.profile.segmentation_batch,
                ctx,
                writes,
            )
            ctx.heart.show({"step": "clustering", "chunks": len(run.results)})
            faults.stall("cluster")
            output = backend.finish(run.results, duration)
        else:
            run = run_chunks(
                STAGE,
                folder,
                1,
                lambda _i, batch: _to_arrays(backend.diarize(samples, rate, batch_size=batch)),
                rt.profile.segmentation_batch,
                ctx,
                writes,
            )
            output = _from_arrays(run.results[0])
        segments = output.segments
        progress = run.progress
        result = DiarizationResult(
            key=keys.attempt_key(STAGE, audio.attempt_id, me, RESULT),
            backend=backend.name,
            attempt_id=me,
            worker_id=rt.worker_id,
            seconds=round(time.perf_counter() - started, 3),
            attempt=activity.info().attempt,
            num_speakers=len({s.speaker for s in segments}),
            num_segments=len(segments),
            speech_s=round(sum(s.duration for s in segments), 3),
            batch_sizes=progress.batch_sizes_tried if progress else [],
            oom_count=progress.oom_count if progress else 0,
            chunks_computed=len(run.computed),
        )
        writes.put_json(
            result.key,
            {
                "summary": result.model_dump(),
                "segments": [s.model_dump() for s in segments],
                "uncertain": [list(span) for span in output.uncertain],
            },
        )
        ctx.audio_s = duration
        return result


def _to_arrays(output: DiarizationOutput) -> dict[str, np.ndarray]:
    segments = output.segments
    return {
        "start": np.array([s.start for s in segments], dtype=np.float64),
        "end": np.array([s.end for s in segments], dtype=np.float64),
        "speaker": np.array([s.speaker for s in segments], dtype=np.str_),
        "uncertain": np.array(output.uncertain, dtype=np.float64).reshape(-1, 2),
    }


def _from_arrays(arrays: dict[str, np.ndarray]) -> DiarizationOutput:
    segments = [
        Segment(start=float(s), end=float(e), speaker=str(k))
        for s, e, k in zip(arrays["start"], arrays["end"], arrays["speaker"])
    ]
    return DiarizationOutput(segments, [(float(s), float(e)) for s, e in arrays["uncertain"]])
