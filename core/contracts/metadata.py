"""metadata.json, a video's commit marker, as a typed model.

The commit (core/store/commit.py, run by activities/commit.py) writes it last, only if
absent, and never rewrites it: its presence in the current schema's folder is what "this video is
committed" means, and it records the sha256 of every other committed file. Everything
downstream (the committed check, manifests, exports and clips, reports, benchmarks)
reads it by fields through ``Metadata``, never by key.

Versions. ``schema_version`` (core.contracts.video.SCHEMA_VERSION) names the folder and what the
outputs mean. Within a version, keys were added over time: ``source.url_sha256``,
``uncertain``, ``embedding``, ``quality`` with the rows' ``labels`` and ``unusable_by``,
``backends.labels``, ``committed_by``, ``files``, ``file_keys``, ``language`` with
``speakers[*].language`` and ``backends.language``. So that a marker of any age loads,
every field has a default (what a reader gets where a marker lacks the key), keys no
field names are kept (``extra="allow"``, in every part), and ``dump`` writes back only
the keys a marker was built or read with, in field order: the writer's JSON has
exactly the keys it always had, and a marker read and dumped is the JSON it was.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.contracts.video import MusicRegion, Segment, SharedAudio, UsablePolicy

Span = tuple[float, float]  # [start, end] in seconds; a JSON list of two numbers
# A quality label's value: float or None (unmeasured) for every label core.analysis.quality
# measures (SegmentLabels' fields, as the labels stage stores them); any other JSON
# scalar is kept as it is (the export filters and stores numbers only).
LabelValue = float | int | bool | str | None


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Source(_Part):
    """Where the audio came from: the URL without credentials or query tokens, the
    original URL's sha256 (what an id reused for another URL is compared on; commits
    before it stored the URL whole), the title, and original.wav's sha256."""

    url: str
    url_sha256: str | None = None
    title: str | None = None
    sha256: str = ""


class SpokenLanguage(_Part):
    """What the language head heard (core/analysis/language.py): the likeliest language
    (Whisper's code: ISO 639-1 where one exists), its probability, and the top few with
    theirs. A low probability means "unsure", not the language named."""

    language: str
    probability: float
    top: list[tuple[str, float]] = []


class LanguageHeard(_Part):
    """What the labels stage stores of the language head's answers (labels.json's
    ``language``): the video's, each speaker's (a speaker with no clean window has
    none), and how many windows it listened to."""

    video: SpokenLanguage | None = None
    speakers: dict[str, SpokenLanguage] = {}
    windows: int = 0


class Speaker(_Part):
    speech_s: float = 0.0
    centroid: list[float] = []  # the speaker's mean vector, of ``Metadata.embedding``
    language: SpokenLanguage | None = None  # when the labels stage heard a clean window of it


class SegmentRow(Segment):
    """Row i of ``segments``: diarized segment i (row i of embeddings.npy), with what
    the commit found in it. ``labels`` and ``unusable_by`` are there when the labels
    stage ran; rows committed before it have neither."""

    model_config = ConfigDict(extra="allow")

    overlap: bool = False  # another speaker talks during it
    music: bool = False  # a music region touches it
    labels: dict[str, LabelValue] | None = None
    unusable_by: list[str] = Field(default_factory=list)  # the usable-policy bounds its labels break
    usable: bool = False
    usable_regions: list[Span] = Field(default_factory=list)
    # another video's audio holds this turn too (``Metadata.shared_audio``): that video's id.
    # Export leaves it out; it stays usable by its own measure.
    duplicate_of: str | None = None

    @property
    def usable_s(self) -> float:
        return sum(e - s for s, e in self.usable_regions)

    def label(self, name: str) -> float | None:
        """A numeric label's value; None where unmeasured, absent or not a number."""
        value = (self.labels or {}).get(name)
        return float(value) if isinstance(value, (int, float)) else None


class Music(MusicRegion):
    model_config = ConfigDict(extra="allow")


class Backends(_Part):
    diarization: str = ""
    embedding: str = ""
    music: str = ""
    labels: str | None = None  # when the labels stage ran
    language: str | None = None  # the language model, when the labels stage ran it


class Embedding(_Part):
    """What the vectors in embeddings.npy and the speakers' centroids are: vectors of
    different models or dimensions must never be compared or mixed downstream."""

    model: str
    dim: int


class Policy(UsablePolicy):
    """The usable policy the commit applied (a bound unknown here is kept)."""

    model_config = ConfigDict(extra="allow")


class Quality(_Part):
    """Present when the labels stage ran: per label its speech-weighted mean over the
    segments that have it, and the seconds each usable-policy bound removed."""

    labels_version: int
    dnsmos_model: str
    usable_policy: Policy
    mean: dict[str, float] = {}
    unusable_s_by: dict[str, float] = {}


class CommittedBy(_Part):
    workflow_id: str | None = None
    run_id: str | None = None


class Metadata(_Part):
    schema_version: int = 0  # 0: a marker without one, which is no current commit
    video_id: str = ""
    batch_id: str | None = None
    source: Source | None = None
    duration_s: float = 0.0
    num_speakers: int = 0
    speakers: dict[str, Speaker] = {}
    segments: list[SegmentRow] = []
    music: list[Music] = []
    uncertain: list[Span] = []  # where the diarization is unsure how many people talk
    usable_s: float = 0.0
    usable_pct: float = 0.0
    min_usable_s: float = 0.0
    backends: Backends | None = None
    embedding: Embedding | None = None
    quality: Quality | None = None
    language: SpokenLanguage | None = None  # the speakers' languages, weighted by their speech
    # a Duplicate: the earlier video whose audio this is. It has no segments or files of
    # its own; its original's are the same audio.
    duplicate_of: str | None = None
    shared_audio: list[SharedAudio] = []  # stretches an earlier video holds too
    committed_by: CommittedBy | None = None  # the workflow run that committed it
    files: dict[str, str] = {}  # committed file name -> sha256
    # a file committed away from its usual key (another run's bytes held it): name -> key
    file_keys: dict[str, str] = {}

    def dump(self) -> dict[str, Any]:
        """The JSON object to store: the keys set, in field order, then any others."""
        return self.model_dump(mode="json", exclude_unset=True)

    def language_of(self, speaker: str) -> SpokenLanguage | None:
        """What a speaker's clips are said to speak: its own language where the labels
        stage heard a clean window of it, else the video's."""
        own = self.speakers[speaker].language if speaker in self.speakers else None
        return own or self.language

    @property
    def committed_run_id(self) -> str | None:
        return self.committed_by.run_id if self.committed_by else None
