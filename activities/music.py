"""detect_music: analysis audio -> music regions with probabilities."""

from __future__ import annotations

import time

from temporalio import activity

from activities.runtime import load_analysis_audio, runtime, scratch_dir, stage
from core import music
from core.models import AudioRef, MusicResult


@activity.defn(name="detect_music")
def detect_music(audio: AudioRef) -> MusicResult:
    rt = runtime()
    keys = rt.store.keys(audio.video_id)
    with stage("music") as log:
        done = rt.store.get_json_or_none(keys.music)
        if done is not None:
            log.info("music.reused")
            return MusicResult.model_validate(done["summary"])
        with scratch_dir(audio.video_id) as tmp:
            samples, rate = load_analysis_audio(audio, tmp)
        started = time.perf_counter()
        regions = music.detect_music(samples, rate)
        result = MusicResult(
            key=keys.music,
            backend=music.BACKEND_NAME,
            worker_id=rt.worker_id,
            seconds=round(time.perf_counter() - started, 3),
            attempt=activity.info().attempt,
            num_regions=len(regions),
            music_s=round(sum(r.end - r.start for r in regions), 3),
        )
        rt.store.put_json(
            keys.music, {"summary": result.model_dump(), "regions": [r.model_dump() for r in regions]}
        )
        return result
