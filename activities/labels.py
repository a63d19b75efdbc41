"""label_segments: quality labels for every diarized segment, chunk by chunk, then the
spoken language of each speaker and of the video (``core/analysis/language.py``).

The labels (DNSMOS, bandwidth, SNR, clipping, loudness, music and singing shares:
``core/analysis/quality.py``) are measured once, here, and stored as labels: nothing is deleted
on them. Bandwidth, clipping and loudness need the source-rate copy, so this stage is
the one model stage that reads ``original.wav``; it reads only the segments' samples.
Chunks group the segments by start time (one DNSMOS block of audio each, else
``chunk_s``), so a kill costs at most one chunk of labels.
"""

from __future__ import annotations

import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from temporalio import activity

from activities.model_stage import ChunkRun, ModelStage, StageAttempt
from activities.scratch import scratch_dir
from core.contracts.metadata import LanguageHeard
from core.contracts.stages import Stage
from core.contracts.video import LabelRequest, LabelResult, MusicRegion, Segment

if TYPE_CHECKING:  # scipy, soundfile, onnxruntime: loaded where labels are measured
    from core.analysis import quality
    from core.analysis.audio import Recording

STAGE = Stage.LABELS
RESULT = "labels.json"  # summary and one labels row per segment, in the diarization's order


class LabelActivities(ModelStage[LabelResult]):
    stage, result_file, result_type = STAGE, RESULT, LabelResult

    @activity.defn
    def label_segments(self, request: LabelRequest) -> LabelResult:
        # the labels depend on the audio, the segments and the music regions: a new attempt
        # of either upstream stage is new input
        source = f"{request.diarization.attempt_id}.{request.music.attempt_id}"
        return self.reuse_or_run(request.audio.video_id, source, lambda a: _label(a, request))


def _label(attempt: StageAttempt, request: LabelRequest) -> LabelResult:
    from core.analysis import quality

    store, audio = attempt.rt.store, request.audio
    segments = [Segment.model_validate(s) for s in store.get_json(request.diarization.key)["segments"]]
    regions = [MusicRegion.model_validate(r) for r in store.get_json(request.music.key)["regions"]]
    music = [(r.start, r.end, r.probability) for r in regions]
    with scratch_dir(attempt.rt, audio.video_id) as tmp:
        original = store.download_file(audio.original_key, tmp / "original.wav")
        with (
            attempt.open_audio(audio) as recording,
            ThreadPoolExecutor(1, "events") as beside,  # joined before the recording closes
        ):
            run = _label_chunks(attempt, segments, music, original, recording, beside)
            heard = _language(attempt, segments, regions, recording)
    rows = _rows(run.results, len(segments))
    result = LabelResult(
        **attempt.summary(run, RESULT),
        backend=quality.DNSMOS_MODEL,
        num_segments=len(rows),
        labels_version=quality.LABELS_VERSION,
        dnsmos_model=quality.DNSMOS_MODEL,
        language_model=attempt.rt.settings.language_model,
    )
    return attempt.finish(result, labels=rows, language=heard.model_dump(mode="json"))


def _language(
    attempt: StageAttempt, segments: list[Segment], regions: list[MusicRegion], recording: Recording
) -> LanguageHeard:
    """The language of each speaker and of the video, from a few windows of clean
    speech: a few CPU seconds per video, so it runs after the chunks, not per chunk."""
    from core.analysis import language

    settings = attempt.rt.settings
    cache = settings.model_cache_dir / "whisper" if settings.model_cache_dir else None
    model = language.load(settings.language_model, cache, settings.model_threads or 1)
    windows = language.speech_windows(segments, regions, language.window_budget(recording.duration_s))
    started = time.perf_counter()
    heard = model.identify(recording, recording.rate, windows)
    attempt.ctx.log.info(
        "labels.language",
        language=heard.video.language if heard.video else None,
        probability=heard.video.probability if heard.video else None,
        windows=heard.windows,
        speakers=len(heard.speakers),
        seconds=round(time.perf_counter() - started, 2),
    )
    return heard


def _label_chunks(
    attempt: StageAttempt,
    segments: list[Segment],
    music: list[tuple[float, float, float]],
    original: Path,
    recording: Recording,
    beside: ThreadPoolExecutor,
) -> ChunkRun:
    from core.analysis import quality

    settings, rate = attempt.rt.settings, recording.rate
    # the audio events (music, singing) on another core, while DNSMOS and the signal
    # labels are measured: the labels stage is alone on the machine once embed is done
    events = beside.submit(quality.detect_events, recording, rate)
    models = _models(settings.dnsmos_block_s)
    chunk_s = settings.dnsmos_block_s or settings.chunk_s  # whole DNSMOS blocks per chunk
    chunks = _by_chunk(segments, chunk_s, max(1, math.ceil(recording.duration_s / chunk_s)))

    def compute(index: int, _batch: int) -> dict[str, np.ndarray]:
        members = chunks[index]
        spans = [(segments[i].start, segments[i].end) for i in members]
        speakers = [segments[i].speaker for i in members]
        labels = (
            models.label_segments(original, recording, rate, spans, music, events, speakers) if spans else []
        )
        return _to_arrays(members, labels)

    return attempt.chunks(len(chunks), compute, 1)


@functools.lru_cache(maxsize=2)
def _models(block_s: float) -> quality.QualityModels:
    """One DNSMOS session per worker process, not one per video."""
    from core.analysis import quality

    return quality.QualityModels(block_s=block_s)


def _by_chunk(segments: list[Segment], chunk_s: float, num_chunks: int) -> list[list[int]]:
    """Segment indices per chunk, by start time."""
    chunks: list[list[int]] = [[] for _ in range(num_chunks)]
    for index, segment in enumerate(segments):
        chunks[min(int(segment.start // chunk_s), num_chunks - 1)].append(index)
    return chunks


def _to_arrays(members: list[int], labels: list[quality.SegmentLabels]) -> dict[str, np.ndarray]:
    """A chunk's labels as arrays (a checkpoint is an .npz): NaN stands for None."""
    arrays = {"index": np.array(members, dtype=np.int64)}
    for name in _label_fields():
        values = [getattr(label, name) for label in labels]
        arrays[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return arrays


def _rows(results: list[dict[str, np.ndarray]], count: int) -> list[dict[str, float | None]]:
    rows: list[dict[str, float | None]] = [{} for _ in range(count)]
    fields = _label_fields()
    for arrays in results:
        for position, index in enumerate(arrays["index"]):
            rows[int(index)] = {
                name: None if math.isnan(value := float(arrays[name][position])) else round(value, 4)
                for name in fields
            }
    return rows


def _label_fields() -> tuple[str, ...]:
    from core.analysis.quality import SegmentLabels

    return tuple(SegmentLabels.model_fields)
