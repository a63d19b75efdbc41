"""detect_music: analysis audio -> music regions with probabilities, chunk by chunk."""

from __future__ import annotations

import math
import time

import numpy as np
from temporalio import activity

from activities.chunks import run_chunks
from activities.runtime import load_analysis_audio, runtime, scratch_dir, stage
from core import music
from core.models import AudioRef, MusicResult


@activity.defn(name="detect_music")
def detect_music(audio: AudioRef) -> MusicResult:
    rt = runtime()
    keys = rt.store.keys(audio.video_id)
    with stage("music", audio.video_id) as ctx:
        done = rt.store.get_json_or_none(keys.music)
        if done is not None:
            ctx.log.info("music.reused")
            return MusicResult.model_validate(done["summary"])
        with scratch_dir(audio.video_id) as tmp:
            samples, rate = load_analysis_audio(audio, tmp)
        started = time.perf_counter()
        # whole blocks per chunk, so chunk scores concatenate into the recording's
        blocks_per_chunk = max(1, round(rt.settings.chunk_s / music.BLOCK_S))
        length = int(blocks_per_chunk * music.BLOCK_S * rate)
        run = run_chunks(
            "music",
            audio.video_id,
            max(1, math.ceil(len(samples) / length)),
            lambda i, _batch: {"scores": music.block_scores(samples[i * length : (i + 1) * length], rate)},
            rt.profile.music_batch,
            ctx,
        )
        scores = np.concatenate([r["scores"] for r in run.results])
        regions = music.regions_from_scores(scores, len(samples) / rate)
        result = MusicResult(
            key=keys.music,
            backend=music.BACKEND_NAME,
            worker_id=rt.worker_id,
            seconds=round(time.perf_counter() - started, 3),
            attempt=activity.info().attempt,
            num_regions=len(regions),
            music_s=round(sum(r.end - r.start for r in regions), 3),
            chunks_computed=len(run.computed),
        )
        rt.store.put_json(
            keys.music, {"summary": result.model_dump(), "regions": [r.model_dump() for r in regions]}
        )
        ctx.audio_s = len(samples) / rate
        return result
