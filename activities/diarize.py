"""diarize_audio: analysis audio -> speaker turns (bulk in storage, summary in payload)."""

from __future__ import annotations

import time

from temporalio import activity

from activities.runtime import load_analysis_audio, runtime, scratch_dir, stage
from core.diarization import get_diarization_backend
from core.models import AudioRef, DiarizationResult


@activity.defn(name="diarize_audio")
def diarize_audio(audio: AudioRef) -> DiarizationResult:
    rt = runtime()
    keys = rt.store.keys(audio.video_id)
    with stage("diarize") as log:
        done = rt.store.get_json_or_none(keys.diarization)
        if done is not None:
            log.info("diarize.reused")
            return DiarizationResult.model_validate(done["summary"])
        backend = get_diarization_backend(rt.settings)
        with scratch_dir(audio.video_id) as tmp:
            samples, rate = load_analysis_audio(audio, tmp)
        started = time.perf_counter()
        segments = backend.diarize(samples, rate)
        result = DiarizationResult(
            key=keys.diarization,
            backend=backend.name,
            worker_id=rt.worker_id,
            seconds=round(time.perf_counter() - started, 3),
            attempt=activity.info().attempt,
            num_speakers=len({s.speaker for s in segments}),
            num_segments=len(segments),
            speech_s=round(sum(s.duration for s in segments), 3),
        )
        rt.store.put_json(
            keys.diarization,
            {"summary": result.model_dump(), "segments": [s.model_dump() for s in segments]},
        )
        return result
