"""ObjectStore against a real S3-compatible server (localbucket) through boto3."""

import pytest

from core.errors import StorageUnavailable
from core.settings import Settings
from devstack.stack import free_port


@pytest.fixture()
def store(storage_server):
    from core.storage import ObjectStore

    s = ObjectStore(storage_server.settings(s3_bucket="unit", s3_prefix="/runs/"))
    s.ensure_bucket()
    return s


def test_roundtrip_list_and_delete(store, tmp_path):
    from core.models import SCHEMA_VERSION

    keys = store.keys("vid1")
    assert keys.metadata == f"runs/vid1/v{SCHEMA_VERSION}/metadata.json"
    assert store.keys("vid1", schema_version=1).metadata == "runs/vid1/metadata.json"  # before versioned folders
    store.put_json(keys.metadata, {"a": 1})
    store.put_bytes(keys.analysis, b"\x00" * 10)
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * (9 * 2**20))  # large enough for a multipart upload
    store.put_file(keys.original, src)
    assert store.get_json(keys.metadata) == {"a": 1}
    assert store.exists(keys.original) and not store.exists(keys.rttm)
    assert store.get_json_or_none(keys.rttm) is None
    assert store.download_file(keys.original, tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert store.delete_prefix(keys.work_root) == 1
    assert store.list_keys("runs/vid1/") == [keys.metadata, keys.original]


def test_unreachable_storage_is_a_retryable_typed_error():
    from core.storage import ObjectStore

    settings = Settings(s3_endpoint_url=f"http://127.0.0.1:{free_port()}", s3_bucket="x")
    store = ObjectStore(settings)
    with pytest.raises(StorageUnavailable) as info:
        store.get_json_or_none("k")
    assert info.value.retryable


def test_create_json_never_overwrites(store):
    key = store.keys("vid2").metadata
    assert store.create_json(key, {"first": True}) is True
    assert store.create_json(key, {"first": False}) is False
    assert store.get_json(key) == {"first": True}
