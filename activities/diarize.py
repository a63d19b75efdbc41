"""diarize_audio: analysis audio -> speaker turns (bulk in storage, summary in payload).

Backends that split into per-chunk feature extraction and a global step (the default
``pretrained`` backend: local segmentation and embeddings per chunk, clustering at the
end) checkpoint every ``chunk_s`` of audio, so a kill costs at most one chunk; a
whole-recording backend (pyannote) is one chunk, still with OOM halving of its batch
sizes. A chunk's CAM++ trunk frames (``pretrained``) go beside its checkpoint, for the
embed stage to pool segment embeddings from: the recording is encoded once.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from temporalio import activity

from activities.model_stage import ChunkRun, ModelStage, StageAttempt, npz_bytes
from core.analysis.diarization import (
    FIRST_FRAME,
    FRAMES,
    ChunkedDiarization,
    ChunkFeatures,
    DiarizationOutput,
    get_diarization_backend,
)
from core.contracts.stages import Stage
from core.contracts.video import AudioRef, DiarizationResult, Segment
from core.service import faults
from core.store import layout

if TYPE_CHECKING:
    from core.analysis.audio import Recording

STAGE = Stage.DIARIZE
RESULT = "diarization.json"  # summary, segments and uncertain spans of one attempt


class DiarizeActivities(ModelStage[DiarizationResult]):
    stage, result_file, result_type = STAGE, RESULT, DiarizationResult

    @activity.defn
    def diarize_audio(self, audio: AudioRef) -> DiarizationResult:
        return self.reuse_or_run(audio.video_id, audio.attempt_id, lambda a: _diarize(a, audio))


def _diarize(attempt: StageAttempt, audio: AudioRef) -> DiarizationResult:
    backend = get_diarization_backend(attempt.rt.settings)
    with attempt.open_audio(audio) as recording:
        if isinstance(backend, ChunkedDiarization):
            run, output = _chunked(attempt, backend, recording)
        else:  # a whole-recording backend needs the samples in memory: one chunk
            batch = attempt.rt.profile.segmentation_batch
            run = attempt.chunks(
                1, lambda _i, size: _to_arrays(backend.diarize(recording[:], recording.rate, size)), batch
            )
            output = _from_arrays(run.results[0])
    segments = output.segments
    result = DiarizationResult(
        **attempt.summary(run, RESULT),
        backend=backend.name,
        num_speakers=len({s.speaker for s in segments}),
        num_segments=len(segments),
        speech_s=round(sum(s.duration for s in segments), 3),
        **_frames_kept(attempt, run),
    )
    return attempt.finish(
        result,
        segments=[s.model_dump() for s in segments],
        uncertain=[list(span) for span in output.uncertain],
    )


def _chunked(
    attempt: StageAttempt, backend: ChunkedDiarization, recording: Recording
) -> tuple[ChunkRun, DiarizationOutput]:
    """Per-chunk features (each chunk reads only its own span), then the global step."""
    chunk_s = attempt.rt.settings.chunk_s
    num_chunks = max(1, math.ceil(recording.duration_s / chunk_s))

    def extract(index: int, size: int) -> ChunkFeatures:
        features = backend.extract(recording, recording.rate, index * chunk_s, (index + 1) * chunk_s, size)
        if FRAMES in features:  # stored first: a stored chunk has its frames
            trunk = {name: features.pop(name) for name in (FRAMES, FIRST_FRAME)}
            attempt.writes.put_bytes(layout.frames_key(attempt.folder, index), npz_bytes(trunk))
        return features

    run = attempt.chunks(num_chunks, extract, attempt.rt.profile.segmentation_batch)
    attempt.ctx.heart.show({"step": "clustering", "chunks": len(run.results)})
    faults.stall("cluster")
    return run, backend.finish(run.results, recording.duration_s)


def _frames_kept(attempt: StageAttempt, run: ChunkRun) -> dict[str, Any]:
    """Where the embed stage finds CAM++ frames: set when every chunk stored its own
    (a chunked backend that keeps them), else none."""
    stored = set(attempt.rt.store.list_keys(attempt.folder))
    count = len(run.results)
    if count and all(layout.frames_key(attempt.folder, i) in stored for i in range(count)):
        return {"frames_dir": attempt.folder, "frame_chunks": count}
    return {"frames_dir": None, "frame_chunks": 0}


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
