"""embed_speakers: one embedding per diarized segment, one centroid per speaker."""

from __future__ import annotations

import io
import time

import numpy as np
from temporalio import activity

from activities.runtime import load_analysis_audio, runtime, scratch_dir, stage
from core import embedding
from core.models import EmbeddingResult, EmbedRequest, Segment


@activity.defn(name="embed_speakers")
def embed_speakers(req: EmbedRequest) -> EmbeddingResult:
    rt = runtime()
    keys = rt.store.keys(req.audio.video_id)
    with stage("embed") as log:
        done = rt.store.get_json_or_none(keys.centroids)
        if done is not None:
            log.info("embed.reused")
            return EmbeddingResult.model_validate(done["summary"])
        segments = [Segment(**s) for s in rt.store.get_json(req.diarization.key)["segments"]]
        with scratch_dir(req.audio.video_id) as tmp:
            samples, _rate = load_analysis_audio(req.audio, tmp)
        started = time.perf_counter()
        vectors = embedding.embed_segments(samples, segments, batch_size=rt.settings.embedding_batch_size)
        centroids = embedding.speaker_centroids(segments, vectors)
        result = EmbeddingResult(
            key=keys.segment_embeddings,
            centroids_key=keys.centroids,
            backend=embedding.BACKEND_NAME,
            worker_id=rt.worker_id,
            seconds=round(time.perf_counter() - started, 3),
            attempt=activity.info().attempt,
            dim=int(vectors.shape[1]),
            num_segments=len(segments),
        )
        buffer = io.BytesIO()
        np.save(buffer, vectors.astype(np.float32))
        rt.store.put_bytes(keys.segment_embeddings, buffer.getvalue())
        # written after the vectors: its presence means both are complete
        rt.store.put_json(keys.centroids, {"summary": result.model_dump(), "centroids": centroids})
        return result
