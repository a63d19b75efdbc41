"""Which global speaker each local speaker of a committed video is, and how much clean
speech each global speaker has in the corpus: what the export (a global id per clip,
the per-speaker cap) and the report (hours per speaker) read of the linking runs.

A linking run writes each video's rows beside the video's id, under a name that holds
its run and attempt, before its run.json (activities/speaker_index.py). Only the file of
the attempt a committed run.json names counts: an attempt that never committed may have
left files, and a later run links those videos again under another name.
"""

from __future__ import annotations

import threading

from core.contracts.corpus import SpeakerRow, SpeakerRun
from core.store.layout import (
    SPEAKER_TOTALS_JSON,
    speaker_run_key,
    speaker_runs_folder,
    video_speakers_folder,
)
from core.store.objects import ObjectStore

_totals_cache: dict[tuple[str, str, int, str], dict[str, float]] = {}  # one corpus at a time
_totals_lock = threading.Lock()


def run_markers(store: ObjectStore) -> list[str]:
    """Every committed run's marker key, in run order (the folders are zero-padded)."""
    return sorted(k for k in store.list_keys(speaker_runs_folder(store.prefix)) if k.endswith("/run.json"))


class SpeakerLookup:
    """One export page's or one report's view of the linking runs (thread-safe reads)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._attempts: dict[int, str | None] = {}
        self._lock = threading.Lock()

    def of_video(self, video_id: str) -> dict[str, SpeakerRow]:
        """The video's local speaker label -> its row; empty while no committed run linked it."""
        for key in self.store.list_keys(video_speakers_folder(self.store.prefix, video_id)):
            run, _, attempt = key.rsplit("/", 1)[1].removesuffix(".json").partition("-")
            if run.isdigit() and self._committed_attempt(int(run)) == attempt:
                rows = [SpeakerRow.model_validate(r) for r in self.store.get_json(key)]
                return {row.speaker: row for row in rows}
        return {}

    def ids_of(self, video_id: str) -> dict[str, str]:
        """The video's local speaker label -> its global speaker id."""
        return {label: row.speaker_id for label, row in self.of_video(video_id).items()}

    def _committed_attempt(self, run: int) -> str | None:
        with self._lock:
            if run not in self._attempts:
                marker = self.store.get_json_or_none(speaker_run_key(self.store.prefix, run))
                self._attempts[run] = SpeakerRun.model_validate(marker).attempt if marker else None
            return self._attempts[run]

    def clean_speech_s(self) -> dict[str, float]:
        """Global speaker id -> its clean speech over every linked video, as of the last
        committed run (read once per process and run: a million speakers are ~50 MB)."""
        markers = run_markers(self.store)
        if not markers:
            return {}
        last = SpeakerRun.model_validate(self.store.get_json(markers[-1]))
        cache_key = (self.store.bucket, self.store.prefix, last.run, last.attempt)
        with _totals_lock:
            if cache_key not in _totals_cache:
                key = speaker_run_key(self.store.prefix, last.run, SPEAKER_TOTALS_JSON, last.attempt)
                _totals_cache.clear()
                _totals_cache[cache_key] = self.store.get_json_or_none(key) or {}
            return _totals_cache[cache_key]
