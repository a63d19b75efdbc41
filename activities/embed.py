"""embed_speakers: one embedding per diarized segment, one centroid per speaker.

Segments are embedded in chunks of ``chunk_s`` of audio (by start time); each chunk
encodes only the central part of each of its segments (``core.analysis.speaker_embeddings``).
"""

from __future__ import annotations

import io

import numpy as np
from temporalio import activity

from activities.model_stage import ModelStage, StageAttempt
from core.analysis import speaker_embeddings
from core.contracts.stages import Stage
from core.contracts.video import EmbeddingResult, EmbedRequest, Segment

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
    samples, rate = attempt.load_audio(req.audio)
    groups = _group_by_time(segments, attempt.rt.settings.chunk_s)

    def compute(index: int, batch: int) -> dict[str, np.ndarray]:
        group = groups[index]
        lo = min(s.start for s in group)
        hi = max(s.end for s in group)
        shifted = [Segment(start=s.start - lo, end=s.end - lo, speaker=s.speaker) for s in group]
        part = samples[int(lo * rate) : int(np.ceil(hi * rate))]
        return {"vectors": speaker_embeddings.embed_segments(part, shifted, batch_size=batch)}

    run = attempt.chunks(len(groups), compute, attempt.rt.profile.embedding_batch)
    vectors = (
        np.concatenate([r["vectors"] for r in run.results])
        if run.results
        else np.zeros((0, speaker_embeddings.DIM), np.float32)
    )
    centroids = speaker_embeddings.speaker_centroids(segments, vectors)
    result = EmbeddingResult(
        **attempt.summary(run, VECTORS),
        centroids_key=attempt.key(RESULT),
        backend=speaker_embeddings.BACKEND_NAME,
        dim=int(vectors.shape[1]),
        num_segments=len(segments),
    )
    buffer = io.BytesIO()
    np.save(buffer, vectors.astype(np.float32))
    attempt.writes.put_bytes(result.key, buffer.getvalue())
    return attempt.finish(result, result.centroids_key, centroids=centroids)


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
