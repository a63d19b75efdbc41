"""The bucket's layout: every key the pipeline reads or writes is spelled here.

    {video_id}/v{N}/            a committed video (metadata.json last: its commit marker)
    _work/{video_id}/{stage}/   intermediates: chunk checkpoints, one folder per attempt
    _batches/{batch_id}/        each batch's validated input (core/store/batch_input.py)
    manifests/                  one JSONL per UTC day of completed videos
    exports/{batch_id}/{name}/  training shards, their records and index
    corpus/speakers/runs/{n}/   the speakers across videos, one folder per linking run
    corpus/speakers/videos/{video_id}/   each video's rows of the run that linked it
    _probe/                     the start-up check of conditional writes

The folder names are ``core.contracts.ids``' (a video id may not take one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.contracts.ids import (
    BATCHES_FOLDER,
    CORPUS_FOLDER,
    EXPORTS_FOLDER,
    MANIFESTS_FOLDER,
    PROBE_FOLDER,
    WORK_FOLDER,
)
from core.contracts.metadata import Metadata
from core.contracts.video import SCHEMA_VERSION

if TYPE_CHECKING:
    from core.contracts.export import ExportSpec


# a committed video's files, by name (metadata.json's ``files`` and ``file_keys`` use these)
ORIGINAL_WAV = "original.wav"
METADATA_JSON = "metadata.json"
EMBEDDINGS_NPY = "embeddings.npy"
RTTM = "diarization.rttm"
STATS_JSON = "stats.json"


def key_prefix(setting: str) -> str:
    """The setting ``s3_prefix`` as every key begins with it: no leading slash, one
    trailing slash, or nothing."""
    setting = setting.strip("/")
    return f"{setting}/" if setting else ""


@dataclass(frozen=True)
class VideoKeys:
    """The storage layout of one video, for one output schema.

    Each schema version commits into its own folder, ``{video_id}/v{N}/`` (schema 1,
    from before versioned folders, sits at ``{video_id}/``): re-processing a video after
    a schema bump writes a fresh, consistent set of files and never overwrites or mixes
    with what an older schema committed, which stays readable where it was."""

    prefix: str
    video_id: str
    schema_version: int = SCHEMA_VERSION

    def _k(self, name: str) -> str:
        folder = "" if self.schema_version == 1 else f"v{self.schema_version}/"
        return f"{self.prefix}{self.video_id}/{folder}{name}"

    def _w(self, name: str) -> str:
        return f"{work_folder(self.prefix)}{self.video_id}/{name}"

    @property
    def root(self) -> str:
        return self._k("")

    @property
    def original(self) -> str:
        return self._k(ORIGINAL_WAV)

    @property
    def metadata(self) -> str:
        return self._k(METADATA_JSON)

    @property
    def embeddings(self) -> str:
        return self._k(EMBEDDINGS_NPY)

    @property
    def rttm(self) -> str:
        return self._k(RTTM)

    @property
    def stats(self) -> str:
        return self._k(STATS_JSON)

    def file(self, name: str) -> str:
        """A committed file by its name (``original.wav``, ``embeddings.npy``, ...)."""
        return self._k(name)

    def committed_file(self, metadata: Metadata, name: str) -> str:
        """Where committed file ``name`` is: its usual key unless the commit that wrote
        ``metadata`` put it elsewhere (``Metadata.file_keys``)."""
        return metadata.file_keys.get(name) or self.file(name)

    def run_file(self, run_id: str, name: str) -> str:
        """A committed file of one workflow run, where another run's bytes held its
        usual key when this run committed (``Metadata.file_keys`` then names it)."""
        return self._k(f"runs/{run_id}/{name}")

    # --- intermediates, under _work/{video_id}/ ---------------------------------------
    # Attempts of a stage can overlap (a retry starts while a paused attempt lives on),
    # so each attempt writes its results under its own id and the stage result names
    # them. Chunk checkpoints are shared by the attempts working on one input (the
    # attempt id of the stage that made it): a chunk is a function of that input only.
    @property
    def work_root(self) -> str:
        return self._w("")

    def stage_dir(self, stage: str, source: str = "") -> str:
        """One stage's work on one input: chunk checkpoints, then one folder per attempt."""
        return self._w(f"{stage}/{source}/" if source else f"{stage}/")

    def attempt_key(self, stage: str, source: str, attempt_id: str, name: str) -> str:
        return f"{self.stage_dir(stage, source)}{attempt_id}/{name}"


def chunk_key(stage_dir: str, index: int) -> str:
    """One chunk's checkpoint in a stage's folder (``VideoKeys.stage_dir``)."""
    return f"{stage_dir}chunk-{index:05d}.npz"


def frames_key(stage_dir: str, index: int) -> str:
    """One diarization chunk's CAM++ trunk frames, beside its checkpoint: written before
    it, so a stored chunk has its frames (the embed stage pools segments from them)."""
    return f"{stage_dir}chunk-{index:05d}.frames.npz"


def progress_key(stage_dir: str) -> str:
    """A chunked stage's progress (batch size after an OOM), beside its chunks."""
    return f"{stage_dir}progress.json"


def work_folder(prefix: str) -> str:
    """Where every video's intermediates live: what the sweep walks."""
    return f"{prefix}{WORK_FOLDER}/"


def batch_input_key(prefix: str, batch_id: str, name: str = "videos.csv") -> str:
    return f"{prefix}{BATCHES_FOLDER}/{batch_id}/{name}"


def dry_run_input_name(sha256: str) -> str:
    """A dry run's input, named by its content's sha256: a second dry run of the same CSV
    reuses it, one of another CSV gets its own, and the batch's real input stays unwritten."""
    return f"dry-run-{sha256[:16]}.csv"


def manifests_folder(prefix: str) -> str:
    return f"{prefix}{MANIFESTS_FOLDER}/"


def manifest_key(prefix: str, day: str) -> str:
    return f"{manifests_folder(prefix)}manifest_{day}.jsonl"


# --- the speakers across videos (core/corpus/speakers.py, activities/speaker_index.py) ---
# Run n links the videos no earlier run linked. Its run.json, written last and only if
# absent, is its commit marker and names the attempt whose files are the run's: attempts
# can overlap, so each writes under its own id and nothing committed is rewritten.
SPEAKER_RUN_JSON = "run.json"
SPEAKER_INDEX_FAISS = "index.faiss"  # every linked member so far (the index only grows)
SPEAKER_MEMBERS_JSON = "members.json"  # member i's global speaker id, and every linked video
SPEAKER_LINKS_JSONL = "speakers.jsonl"  # this run's rows of the corpus table
SPEAKER_TOTALS_JSON = "totals.json"  # every global speaker's clean speech so far, in seconds


def speaker_runs_folder(prefix: str) -> str:
    return f"{prefix}{CORPUS_FOLDER}/speakers/runs/"


def speaker_run_key(prefix: str, run: int, name: str = SPEAKER_RUN_JSON, attempt: str | None = None) -> str:
    """A run's marker (``run.json``), or one of its attempt's files."""
    folder = f"{speaker_runs_folder(prefix)}{run:06d}/"
    return f"{folder}{name}" if attempt is None else f"{folder}{attempt}/{name}"


def video_speakers_folder(prefix: str, video_id: str) -> str:
    """A video's rows of the corpus table, one file per run attempt that linked it: an
    export or a report finds a video's global speakers with one listing and one read."""
    return f"{prefix}{CORPUS_FOLDER}/speakers/videos/{video_id}/"


def video_speakers_key(prefix: str, video_id: str, run: int, attempt: str) -> str:
    return f"{video_speakers_folder(prefix, video_id)}{run:06d}-{attempt}.json"


# --- the claims on each video's audio (core/store/audio_claims.py) ---
# One entry per key, numbered: each is created only if absent, so two claimers that
# race for the same number cannot both write it, and every reader sees one order.
AUDIO_CLAIM_DIGITS = 10


def audio_claims_folder(prefix: str) -> str:
    return f"{prefix}{CORPUS_FOLDER}/audio/claims/"


def audio_claim_key(prefix: str, seq: int) -> str:
    return f"{audio_claims_folder(prefix)}{seq:0{AUDIO_CLAIM_DIGITS}d}.json"


def probe_key(prefix: str, token: str) -> str:
    return f"{prefix}{PROBE_FOLDER}/if-none-match-{token}"


class ExportKeys:
    """Every key of one export, under ``{prefix}exports/{batch_id}/{spec.name}/``."""

    def __init__(self, store_prefix: str, spec: ExportSpec) -> None:
        self.root = f"{store_prefix}{EXPORTS_FOLDER}/{spec.batch_id}/{spec.name}/"

    @property
    def spec(self) -> str:
        return f"{self.root}export.json"

    @property
    def index(self) -> str:
        """The list of whole shards (rewritten by each run: a view of the records)."""
        return f"{self.root}index.json"

    def shard_dir(self, video_id: str) -> str:
        return f"{self.root}shards/{video_id}/"

    def record(self, video_id: str) -> str:
        return f"{self.root}records/{video_id}.json"

    @property
    def records(self) -> str:
        return f"{self.root}records/"


def batch_exports_root(store_prefix: str, batch_id: str) -> str:
    """Where a batch's exports and its yield report live."""
    return f"{store_prefix}{EXPORTS_FOLDER}/{batch_id}/"
