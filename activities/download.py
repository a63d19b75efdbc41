"""download_audio: source URL -> original.wav (48 kHz) + 16 kHz analysis copy in storage."""

from __future__ import annotations

import time

from temporalio import activity

from activities.runtime import runtime, scratch_dir, stage
from core.audio import sha256_file
from core.download import fetch_audio
from core.models import AudioRef, VideoSpec


@activity.defn(name="download_audio")
def download_audio(spec: VideoSpec) -> AudioRef:
    rt = runtime()
    keys = rt.store.keys(spec.video_id)
    with stage("download", spec.video_id) as ctx:
        done = rt.store.get_json_or_none(keys.audio_ref)
        if done is not None:  # an earlier attempt uploaded both copies: reuse them
            ctx.log.info("download.reused")
            return AudioRef.model_validate(done)
        started = time.perf_counter()
        with scratch_dir(spec.video_id) as tmp:
            got = fetch_audio(
                spec.url,
                tmp,
                max_duration_s=rt.settings.max_duration_s,
                silence_dbfs=rt.settings.silence_dbfs,
                ffmpeg=rt.settings.ffmpeg_location,
            )
            sha256 = sha256_file(got.original)
            rt.store.put_file(keys.original, got.original, "audio/wav")
            rt.store.put_file(keys.analysis, got.analysis, "audio/wav")
        ref = AudioRef(
            video_id=spec.video_id,
            original_key=keys.original,
            analysis_key=keys.analysis,
            duration_s=round(got.duration_s, 3),
            sha256=sha256,
            source_title=got.title,
            worker_id=rt.worker_id,
            seconds=round(time.perf_counter() - started, 3),
            attempt=activity.info().attempt,
        )
        rt.store.put_json(keys.audio_ref, ref.model_dump())
        ctx.audio_s = ref.duration_s
        return ref
