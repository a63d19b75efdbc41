"""ObjectStore against a real S3-compatible server (localbucket) through boto3."""

import time

import pytest

from core.contracts.errors import StorageUnavailable
from core.service.settings import Settings
from devstack.stack import free_port


@pytest.fixture()
def store(servers):
    from core.store.objects import ObjectStore

    s = ObjectStore(servers.settings(s3_bucket="unit", s3_prefix="/runs/"))
    s.ensure_bucket()
    return s


def test_roundtrip_list_and_delete(store, tmp_path):
    from core.contracts.video import SCHEMA_VERSION

    keys = store.keys("vid1")
    assert keys.metadata == f"runs/vid1/v{SCHEMA_VERSION}/metadata.json"
    assert (
        store.keys("vid1", schema_version=1).metadata == "runs/vid1/metadata.json"
    )  # before versioned folders
    store.put_json(keys.metadata, {"a": 1})
    store.put_bytes(keys.attempt_key("download", "", "a1", "analysis_16k.wav"), b"\x00" * 10)
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
    from core.store.objects import ObjectStore

    settings = Settings(s3_endpoint_url=f"http://127.0.0.1:{free_port()}", s3_bucket="x")
    store = ObjectStore(settings)
    with pytest.raises(StorageUnavailable) as info:
        store.get_json_or_none("k")
    assert info.value.retryable


def test_an_outage_is_ridden_out_then_reported_typed():
    from core.store.objects import ObjectStore

    store = ObjectStore(
        Settings(s3_endpoint_url=f"http://127.0.0.1:{free_port()}", s3_bucket="x"), ride_out_s=3
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.exists("k")
    assert 2.5 <= time.monotonic() - started < 30, "retried for about ride_out_s, then gave up"


def test_create_json_never_overwrites(store):
    key = store.keys("vid2").metadata
    assert store.create_json(key, {"first": True}) is True
    assert store.create_json(key, {"first": False}) is False
    assert store.get_json(key) == {"first": True}


def test_conditional_copy_never_overwrites_and_checks_its_source(store):
    keys = store.keys("vid3")
    source = keys.attempt_key("download", "", "a1", "original.wav")
    store.put_bytes(source, b"first")
    sha, etag = store.sha256(source)
    assert store.copy_new(source, keys.original, etag) is True
    store.put_bytes(source, b"second")  # what a late writer to a shared key would do
    assert store.copy_new(source, keys.original, etag) is False
    assert store.get_bytes(keys.original) == b"first" and store.sha256(keys.original)[0] == sha


def test_the_embedded_store_honours_conditional_writes(store):
    store.check_conditional_writes()  # raises StoreUnsafe otherwise
    assert not [k for k in store.list_keys("runs/_probe/")], "the probe cleans up after itself"


def test_a_store_that_ignores_if_none_match_is_refused(store, monkeypatch):
    """Fault injected: the store's conditional PUT succeeds every time, as on a server
    that ignores If-None-Match; everything else is the real store."""
    from core.contracts.errors import StoreUnsafe

    monkeypatch.setattr(store, "create_bytes", lambda key, data, *a: store.put_bytes(key, data) or True)
    with pytest.raises(StoreUnsafe, match="If-None-Match"):
        store.check_conditional_writes()


@pytest.mark.parametrize("ignored", ["CopyObject If-None-Match", "CopyObject CopySourceIfMatch"])
def test_a_store_that_ignores_a_condition_of_the_commits_copy_is_refused(store, monkeypatch, ignored):
    """Fault injected (issue 22): the commit copies files with a conditional CopyObject,
    and a probe of PutObject alone let a store through that copies over an existing key
    (or copies whatever the source holds, whatever ETag was checked). The store's
    conditional PutObject and everything else are real."""
    from core.contracts.errors import StoreUnsafe

    real_copy = store.copy_new

    def copy_over(source_key, key, source_etag=None):
        copy = {"Bucket": store.bucket, "Key": source_key}
        store._call("copy_object", Bucket=store.bucket, Key=key, CopySource=copy)
        return True

    def copy_ignoring_etag(source_key, key, source_etag=None):
        return real_copy(source_key, key)

    fake = copy_over if ignored == "CopyObject If-None-Match" else copy_ignoring_etag
    monkeypatch.setattr(store, "copy_new", fake)
    with pytest.raises(StoreUnsafe, match=ignored):
        store.check_conditional_writes()
    assert not store.list_keys(f"{store.prefix}_probe/"), "the probe cleans up after itself"


def test_a_409_conflict_is_retried_not_taken_for_exists(store, monkeypatch):
    """Fault injected: S3 answers 409 ConditionalRequestConflict twice (a concurrent
    conditional write in flight), then the real server answers."""
    from botocore.exceptions import ClientError

    real = store._client.put_object
    calls = []

    def conflicted(**kwargs):
        calls.append(kwargs["Key"])
        if len(calls) <= 2:
            raise ClientError(
                {
                    "Error": {"Code": "ConditionalRequestConflict"},
                    "ResponseMetadata": {"HTTPStatusCode": 409},
                },
                "PutObject",
            )
        return real(**kwargs)

    monkeypatch.setattr(store._client, "put_object", conflicted)
    key = store.keys("vid4").metadata
    assert store.create_json(key, {"v": 1}) is True, "a 409 is not 'already exists'"
    assert len(calls) == 3 and store.get_json(key) == {"v": 1}


def test_retry_waits_are_spread_so_workers_do_not_retry_in_lockstep():
    """Issue 30: after an outage every worker retried at the same instants. Each wait is
    now between half its exponential step and all of it, at random."""
    from core.service.backoff import jittered

    waits = [jittered(8.0) for _ in range(200)]
    assert all(4.0 <= w <= 8.0 for w in waits)
    assert max(waits) - min(waits) > 2.0, "spread, not one instant"
