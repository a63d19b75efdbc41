"""What the corpus knows across videos: the table of speakers and the linking run that
writes it (core/corpus/speakers.py links, activities/speaker_index.py stores, the layout
is core/store/layout.py's ``speaker_run_key``); and the claims on each video's audio
(core/corpus/audio_index.py matches, activities/audio_claims.py decides, the log is
core/store/audio_claims.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from core.contracts.video import SharedAudio, _Model


class SpeakerIndexRequest(_Model):
    """Which committed videos to link: a batch's (the completed VideoWorkflows Temporal's
    visibility lists for it), one UTC day's manifest, or every daily manifest's (neither).
    Videos an earlier run linked are skipped in every case."""

    queue_prefix: str
    batch_id: str | None = None
    day: str | None = None  # YYYY-MM-DD


class SpeakerRow(_Model):
    """One line of ``speakers.jsonl``: one local speaker of one video and its global id."""

    video_id: str
    batch_id: str | None
    speaker: str  # the video's own label (SPEAKER_00, ...), as its segments name it
    speaker_id: str  # the global speaker
    cosine: float | None  # to the member it joined; None where it started the global speaker
    linked: bool  # had the clean speech to link on; false: a global speaker of its own
    clean_speech_s: float
    run: int  # the linking run that wrote it


class SpeakerRun(_Model):
    """``run.json``: a linking run's commit marker (written last, only if absent)."""

    run: int
    attempt: str  # the folder under the run holding its files
    embedding_model: str  # every linked centroid is this model's: never mixed
    link_cosine: float
    min_speech_s: float
    videos: int  # linked by this run
    speakers: int
    linked: int  # speakers with the clean speech to link on
    joined: int  # of those, how many joined an existing global speaker
    members: int  # linked speakers in the index after this run
    global_speakers: int  # distinct global ids after this run


class SpeakerIndexResult(_Model):
    """What a linking run did; ``run`` None: no video was new."""

    run: int | None
    candidates: int  # videos the request named
    skipped: int  # already linked, or not committed with this embedding model
    summary: SpeakerRun | None = None


class ClaimEntry(_Model):
    """One entry of the claim log (``corpus/audio/claims/{seq}.json``, created only if
    absent, so the log's order is the one order every claimer agrees on).

    ``claim``: a video's audio and what was decided for it; ``release``: the video never
    committed (its workflow closed without), so videos waiting on it as their original
    claim again. A video's latest entry is what holds."""

    kind: Literal["claim", "release"]
    video_id: str
    duration_s: float = 0.0
    fingerprint: str = ""  # base64 of core.corpus.fingerprints.Fingerprint.to_bytes
    duplicate_of: str | None = None
    shared: list[SharedAudio] = []
    released_by: str | None = None  # the video that found it lost


class OriginalState(StrEnum):
    """Where the video a duplicate points at stands."""

    COMMITTED = "committed"
    RUNNING = "running"  # its workflow is open: wait
    LOST = "lost"  # its workflow closed without a commit: release it and claim again


class OriginalCheck(_Model):
    video_id: str  # the original
    duplicate: str  # the video waiting on it
