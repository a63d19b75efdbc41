"""download_audio: source URL -> original.wav (48 kHz) + 16 kHz analysis copy in storage.

Both copies go under this attempt's own keys (``activities.fencing``); the commit later
copies original.wav to its committed place after checking its sha256.
"""

from __future__ import annotations

import time
from pathlib import Path

from temporalio import activity

from activities.attempts import StageContext, stage
from activities.fencing import FencedWrites, attempt_id, reusable_result
from activities.runtime import Activities, Runtime
from activities.scratch import scratch_dir
from activities.source_rows import source_url
from core.analysis.audio import sha256_file
from core.contracts.errors import EmptyMedia
from core.contracts.stages import Stage
from core.contracts.video import AudioRef, VideoSpec
from core.corpus.fingerprints import fingerprint
from core.service.settings import Settings
from core.sources.download import SourceAccess, SourceLimits, fetch_audio, pick_proxy
from core.sources.safety import SourcePolicy

STAGE = Stage.DOWNLOAD
AUDIO_REF = "audio_ref.json"  # written last: its presence means both copies are complete
FINGERPRINT = "fingerprint.cpfp"


def source_access(settings: Settings, attempt: str) -> SourceAccess:
    """The operator's cookies and this attempt's proxy, read from their files now (a
    rotated secret is picked up without a restart)."""
    proxies = []
    if settings.ytdlp_proxies_file:
        lines = settings.ytdlp_proxies_file.read_text().splitlines()
        proxies = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return SourceAccess(
        cookies_file=settings.ytdlp_cookies_file,
        proxy=pick_proxy(proxies, attempt),
        ytdlp_options=settings.ytdlp_options,
    )


class DownloadActivities(Activities):
    @activity.defn
    def download_audio(self, spec: VideoSpec) -> AudioRef:
        return _download(self.rt, spec)


def _fingerprint(rt: Runtime, analysis: Path, duration_s: float, ctx: StageContext) -> bytes | None:
    """The audio's fingerprint, stored form; None when the check is off or the audio is
    too short for one (such a video is processed without a claim)."""
    if not rt.settings.duplicate_check:
        return None
    ctx.heart.show({"step": "fingerprint"})
    started = time.perf_counter()
    try:
        found = fingerprint(analysis, ffmpeg=rt.settings.ffmpeg_location, media_s=duration_s)
    except EmptyMedia:
        return None
    ctx.log.info(
        "download.fingerprint", items=len(found.items), seconds=round(time.perf_counter() - started, 2)
    )
    return found.to_bytes()


def _download(rt: Runtime, spec: VideoSpec) -> AudioRef:
    keys = rt.store.keys(spec.video_id)
    with stage(rt, STAGE, spec.video_id, watch_progress=True) as ctx:
        done = reusable_result(rt.store, keys.stage_dir(STAGE), AUDIO_REF)
        if done is not None and done.get("url_sha256") == spec.source_sha256:  # an earlier attempt finished
            ctx.log.info("download.reused", attempt_id=done["attempt_id"])
            return AudioRef.model_validate(done)
        me = attempt_id()
        writes = FencedWrites(rt.store, keys)
        started = time.perf_counter()
        with scratch_dir(rt, spec.video_id) as tmp:
            got = fetch_audio(
                source_url(rt.store, spec),
                tmp,
                silence_dbfs=rt.settings.silence_dbfs,
                ffmpeg=rt.settings.ffmpeg_location,
                progress=ctx.heart.show,
                access=source_access(rt.settings, me),
                policy=SourcePolicy.from_settings(rt.settings),
                limits=SourceLimits(
                    max_duration_s=rt.settings.max_duration_s,
                    max_bytes=rt.settings.max_download_mb << 20,
                    timeout_s=rt.settings.download_timeout_s,
                    min_bytes_per_s=rt.settings.min_download_bytes_per_s,
                ),
            )
            sha256 = sha256_file(got.original)
            fingerprinted = _fingerprint(rt, got.analysis, got.duration_s, ctx)
            ref = AudioRef(
                video_id=spec.video_id,
                url_sha256=spec.source_sha256,
                attempt_id=me,
                original_key=keys.attempt_key(STAGE, "", me, "original.wav"),
                analysis_key=keys.attempt_key(STAGE, "", me, "analysis_16k.wav"),
                duration_s=round(got.duration_s, 3),
                sha256=sha256,
                fingerprint_key=keys.attempt_key(STAGE, "", me, FINGERPRINT) if fingerprinted else "",
                source_title=got.title,
                worker_id=rt.worker_id,
                attempt=activity.info().attempt,
            )
            ctx.heart.show({"step": "upload"})
            writes.put_file(ref.original_key, got.original, "audio/wav")
            writes.put_file(ref.analysis_key, got.analysis, "audio/wav")
            if fingerprinted:
                writes.put_bytes(ref.fingerprint_key, fingerprinted)
        ref = ref.model_copy(
            update={"seconds": round(time.perf_counter() - started, 3), **ctx.memory_fields()}
        )
        writes.put_json(keys.attempt_key(STAGE, "", me, AUDIO_REF), ref.model_dump())
        ctx.audio_s = ref.duration_s
        return ref
