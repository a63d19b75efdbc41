"""The contracts at the starter/workflow boundary refuse what could do harm."""

import pytest
from pydantic import ValidationError

from core.contracts.ids import RESERVED_IDS
from core.contracts.video import VideoSpec
from core.store.layout import VideoKeys


@pytest.mark.parametrize(
    "video_id",
    ["../etc", "a/b", "..", "", "x" * 65, "has space", "semi;colon", "ünïcode", "_work/../x"],
)
def test_video_id_that_could_escape_its_prefix_is_rejected(video_id):
    with pytest.raises(ValidationError, match="video_id"):
        VideoSpec(video_id=video_id, url="http://127.0.0.1/a.ogg")


@pytest.mark.parametrize("video_id", sorted(RESERVED_IDS))
def test_ids_naming_a_pipeline_folder_are_rejected(video_id):
    with pytest.raises(ValidationError, match="names a storage folder"):
        VideoSpec(video_id=video_id, url="http://127.0.0.1/a.ogg")


def test_every_top_level_folder_the_store_writes_is_reserved(tmp_path):
    """The folders the code writes outside video ids are exactly the reserved ones."""
    from core.contracts.ids import BATCHES_FOLDER, MANIFESTS_FOLDER, PROBE_FOLDER, WORK_FOLDER

    keys = VideoKeys(prefix="", video_id="v")
    assert keys.work_root.split("/")[0] == WORK_FOLDER
    assert {WORK_FOLDER, BATCHES_FOLDER, PROBE_FOLDER, MANIFESTS_FOLDER} <= RESERVED_IDS


@pytest.mark.parametrize("video_id", ["dQw4w9WgXcQ", "a", "x" * 64, "ep-01_b", "_leadingUnd", "-leadingDsh"])
def test_valid_video_ids_are_accepted(video_id):
    assert VideoSpec(video_id=video_id, url="https://example.org/v").video_id == video_id


@pytest.mark.parametrize("url", ["ftp://host/a", "javascript:alert(1)", "", "http://", "/etc/passwd"])
def test_url_must_be_http(url):
    with pytest.raises(ValidationError, match="url"):
        VideoSpec(video_id="ok", url=url)


def test_storage_keys_stay_under_the_video_prefix():
    keys = VideoKeys(prefix="data/", video_id="abc")
    finals = [keys.original, keys.metadata, keys.embeddings, keys.rttm, keys.stats]
    assert all(k.startswith("data/abc/") for k in finals)
    work = [keys.stage_dir("diarize", "a1"), keys.attempt_key("download", "", "a1", "original.wav")]
    assert all(k.startswith("data/_work/abc/") for k in work)
    assert keys.attempt_key("embed", "d1", "e1", "vectors.npy") != keys.attempt_key(
        "embed", "d1", "e2", "vectors.npy"
    )
