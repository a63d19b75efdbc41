"""embed_speakers: one embedding per diarized segment, one centroid per speaker.

Where the diarization kept its CAM++ trunk frames (``DiarizationResult.frames_dir``),
each chunk of them adds its part of every segment's pooled statistics: the audio is not
read and CAM++ does not run again. Otherwise segments are embedded in chunks of
``chunk_s`` of audio (by start time), each chunk encoding only the central part of each
of its segments (``core.analysis.speaker_embeddings``).
"""

from __future__ import annotations

import io

import numpy as np
from temporalio import activity

from activities.model_stage import ChunkRun, ModelStage, StageAttempt, npz_arrays
from core.analysis import speaker_embeddings
from core.contracts.stages import Stage
from core.contracts.video import EmbeddingResult, EmbedRequest, Segment
from core.store import layout

STAGE = Stage.EMBED
VECTORS = "vectors.npy"  # row i = segment i of the diarization this stage read
RESULT = "centroids.json"  # written after the vectors: its presence means both are complete


class EmbedActivities(ModelStage[EmbeddingResult]):
    stage, result_file, result_type = STAGE, RESULT, EmbeddingResult

    @activity.defn
    def embed_speakers(self, req: EmbedRequest) -> EmbeddingResult:
        source = req.diarization.attempt_id
        return self.reuse_or_run(req.audio.video_id, source, lambda a: _embed(a, req))


def _embed(attempt: StageAttempt, req: EmbedRequest) -> EmbeddingResult:
    segments = [Segment(**s) for s in attempt.rt.store.get_json(req.diarization.key)["segments"]]
    if req.diarization.frames_dir:
        run, vectors = _pool_from_frames(attempt, req, segments)
        backend = speaker_embeddings.FRAMES_BACKEND_NAME
    else:
        run, vectors = _encode_segments(attempt, req, segments)
        backend = speaker_embeddings.BACKEND_NAME
    centroids = speaker_embeddings.speaker_centroids(segments, vectors)
    result = EmbeddingResult(
        **attempt.summary(run, VECTORS),
        centroids_key=attempt.key(RESULT),
        backend=backend,
        dim=int(vectors.shape[1]),
        num_segments=len(segments),
    )
    buffer = io.BytesIO()
    np.save(buffer, vectors.astype(np.float32))
    attempt.writes.put_bytes(result.key, buffer.getvalue())
    return attempt.finish(result, result.centroids_key, centroids=centroids)


def _pool_from_frames(
    attempt: StageAttempt, req: EmbedRequest, segments: list[Segment]
) -> tuple[ChunkRun, np.ndarray]:
    """Each diarization chunk's frames add their part of every segment's statistics."""
    from core.analysis import campplus  # torch: loaded where embeddings are made

    frames_dir = req.diarization.frames_dir
    assert frames_dir is not None
    items = speaker_embeddings.segment_items(segments, round(req.audio.duration_s * campplus.RATE))
    attempt.ctx.audio_s = req.audio.duration_s

    def compute(index: int, _batch: int) -> dict[str, np.ndarray]:
        trunk = npz_arrays(attempt.rt.store.get_bytes(layout.frames_key(frames_dir, index)))
        stats = campplus.pool_statistics(trunk["frames"].astype(np.float32), int(trunk["first_frame"]), items)
        touched = np.flatnonzero(stats[:, 0] > 0)
        return {"index": touched, "stats": stats[touched]}

    run = attempt.chunks(req.diarization.frame_chunks, compute, 1)  # no batch: pooling is a product
    if not segments:
        return run, np.zeros((0, speaker_embeddings.DIM), np.float32)
    totals = np.zeros((len(segments), max(part["stats"].shape[1] for part in run.results)), np.float64)
    for part in run.results:
        if len(part["index"]):  # a chunk without frames (none in its span) has narrower rows
            totals[part["index"]] += part["stats"]
    return run, speaker_embeddings.embeddings_from_frames(totals)


def _encode_segments(
    attempt: StageAttempt, req: EmbedRequest, segments: list[Segment]
) -> tuple[ChunkRun, np.ndarray]:
    """A CAM++ pass over each segment's own stretch, chunk by chunk of the audio."""
    groups = _group_by_time(segments, attempt.rt.settings.chunk_s)
    with attempt.open_audio(req.audio) as recording:
        rate = recording.rate

        def compute(index: int, batch: int) -> dict[str, np.ndarray]:
            group = groups[index]
            lo = min(s.start for s in group)
            hi = max(s.end for s in group)
            shifted = [Segment(start=s.start - lo, end=s.end - lo, speaker=s.speaker) for s in group]
            part = recording[int(lo * rate) : int(np.ceil(hi * rate))]
            return {"vectors": speaker_embeddings.embed_segments(part, shifted, batch_size=batch)}

        run = attempt.chunks(len(groups), compute, attempt.rt.profile.embedding_batch)
    vectors = (
        np.concatenate([r["vectors"] for r in run.results])
        if run.results
        else np.zeros((0, speaker_embeddings.DIM), np.float32)
    )
    return run, vectors


def _group_by_time(segments: list[Segment], chunk_s: float) -> list[list[Segment]]:
    """Consecutive runs of segments whose start falls in the same chunk_s window."""
    groups: list[list[Segment]] = []
    current_bucket = None
    for seg in segments:
        bucket = int(seg.start // chunk_s)
        if bucket != current_bucket:
            groups.append([])
            current_bucket = bucket
        groups[-1].append(seg)
    return groups
