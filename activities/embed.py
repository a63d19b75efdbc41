"""embed_speakers: one embedding per diarized segment, one centroid per speaker.

Segments are embedded in chunks of ``chunk_s`` of audio (by start time); each chunk
encodes only the central part of each of its segments (``core.embedding``).
"""

from __future__ import annotations

import io
import time

import numpy as np
from temporalio import activity

from activities.chunks import run_chunks
from activities.fencing import FencedWrites, attempt_id, reusable_result
from activities.runtime import load_analysis_audio, runtime, scratch_dir, stage
from core import embedding
from core.models import EmbeddingResult, EmbedRequest, Segment

STAGE = "embed"
VECTORS = "vectors.npy"  # row i = segment i of the diarization this stage read
RESULT = "centroids.json"  # written after the vectors: its presence means both are complete


@activity.defn(name="embed_speakers")
def embed_speakers(req: EmbedRequest) -> EmbeddingResult:
    rt = runtime()
    keys = rt.store.keys(req.audio.video_id)
    folder = keys.stage_dir(STAGE, req.diarization.attempt_id)
    with stage(STAGE, req.audio.video_id) as ctx:
        done = reusable_result(rt.store, folder, RESULT)
        if done is not None:
            ctx.log.info("embed.reused")
            return EmbeddingResult.model_validate(done["summary"])
        me = attempt_id()
        writes = FencedWrites(rt.store, keys)
        segments = [Segment(**s) for s in rt.store.get_json(req.diarization.key)["segments"]]
        with scratch_dir(req.audio.video_id) as tmp:
            samples, rate = load_analysis_audio(req.audio, tmp)
        started = time.perf_counter()
        groups = _group_by_time(segments, rt.settings.chunk_s)

        def compute(index: int, batch: int) -> dict[str, np.ndarray]:
            group = groups[index]
            lo = min(s.start for s in group)
            hi = max(s.end for s in group)
            shifted = [Segment(start=s.start - lo, end=s.end - lo, speaker=s.speaker) for s in group]
            part = samples[int(lo * rate) : int(np.ceil(hi * rate))]
            return {"vectors": embedding.embed_segments(part, shifted, batch_size=batch)}

        run = run_chunks(STAGE, folder, len(groups), compute, rt.profile.embedding_batch, ctx, writes)
        vectors = (
            np.concatenate([r["vectors"] for r in run.results])
            if run.results
            else np.zeros((0, embedding.DIM), np.float32)
        )
        centroids = embedding.speaker_centroids(segments, vectors)
        progress = run.progress
        result = EmbeddingResult(
            key=keys.attempt_key(STAGE, req.diarization.attempt_id, me, VECTORS),
            centroids_key=keys.attempt_key(STAGE, req.diarization.attempt_id, me, RESULT),
            backend=embedding.BACKEND_NAME,
            attempt_id=me,
            worker_id=rt.worker_id,
            seconds=round(time.perf_counter() - started, 3),
            attempt=activity.info().attempt,
            dim=int(vectors.shape[1]),
            num_segments=len(segments),
            batch_sizes=progress.batch_sizes_tried if progress else [],
            oom_count=progress.oom_count if progress else 0,
            chunks_computed=len(run.computed),
        )
        buffer = io.BytesIO()
        np.save(buffer, vectors.astype(np.float32))
        writes.put_bytes(result.key, buffer.getvalue())
        writes.put_json(result.centroids_key, {"summary": result.model_dump(), "centroids": centroids})
        ctx.audio_s = len(samples) / rate
        return result


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
