"""detect_music: analysis audio -> music regions with probabilities, chunk by chunk."""

from __future__ import annotations

import math
import time

import numpy as np
from temporalio import activity

from activities.chunks import run_chunks
from activities.fencing import FencedWrites, attempt_id, reusable_result
from activities.runtime import load_analysis_audio, runtime, scratch_dir, stage
from core import music
from core.models import AudioRef, MusicResult

STAGE = "music"
RESULT = "music.json"


@activity.defn(name="detect_music")
def detect_music(audio: AudioRef) -> MusicResult:
    rt = runtime()
    keys = rt.store.keys(audio.video_id)
    folder = keys.stage_dir(STAGE, audio.attempt_id)
    with stage(STAGE, audio.video_id) as ctx:
        done = reusable_result(rt.store, folder, RESULT)
        if done is not None:
            ctx.log.info("music.reused")
            return MusicResult.model_validate(done["summary"])
        me = attempt_id()
        writes = FencedWrites(rt.store, keys)
        with scratch_dir(audio.video_id) as tmp:
            samples, rate = load_analysis_audio(audio, tmp)
        started = time.perf_counter()
        # whole blocks per chunk, so chunk scores concatenate into the recording's
        blocks_per_chunk = max(1, round(rt.settings.chunk_s / music.BLOCK_S))
        length = int(blocks_per_chunk * music.BLOCK_S * rate)
        run = run_chunks(
            STAGE,
            folder,
            max(1, math.ceil(len(samples) / length)),
            lambda i, _batch: {"scores": music.block_scores(samples[i * length : (i + 1) * length], rate)},
            rt.profile.music_batch,
            ctx,
            writes,
        )
        scores = np.concatenate([r["scores"] for r in run.results])
        regions = music.regions_from_scores(scores, len(samples) / rate)
        result = MusicResult(
            key=keys.attempt_key(STAGE, audio.attempt_id, me, RESULT),
            backend=music.BACKEND_NAME,
            attempt_id=me,
            worker_id=rt.worker_id,
            seconds=round(time.perf_counter() - started, 3),
            attempt=activity.info().attempt,
            num_regions=len(regions),
            music_s=round(sum(r.end - r.start for r in regions), 3),
            chunks_computed=len(run.computed),
        )
        writes.put_json(
            result.key, {"summary": result.model_dump(), "regions": [r.model_dump() for r in regions]}
        )
        ctx.audio_s = len(samples) / rate
        return result
