"""The commit and the fence, through the real activities on real storage and real audio.

The activities run in temporalio's ActivityEnvironment (the SDK's harness: it gives
them an activity context without a server) against the embedded S3 server, with
yt-dlp downloading from the local media server and the real models. Attempt ids come
from the harness's activity info, set per call, as Temporal would set them.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time

import numpy as np
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.commit import CommitActivities
from activities.diarize import DiarizeActivities
from activities.download import DownloadActivities
from activities.embed import EmbedActivities
from activities.fencing import FencedWrites
from activities.music import MusicActivities
from activities.runtime import Runtime
from activities.sweep import SweepActivities
from core.analysis import speaker_embeddings
from core.contracts.errors import AttemptSuperseded, IntermediateMismatch, VideoIdConflict
from core.contracts.metadata import Metadata
from core.contracts.video import CommitRequest, EmbedRequest, VideoSpec
from core.store import layout

pytestmark = pytest.mark.integration


def run(activity_fn, arg, activity_id: str, attempt: int = 1, run_id: str = "run-one"):
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, activity_id=activity_id, attempt=attempt, workflow_run_id=run_id)
    return env.run(activity_fn, *([] if arg is None else [arg]))


@pytest.fixture(scope="module")
def rt(servers, tmp_path_factory):
    settings = servers.settings(s3_bucket="commit", work_dir=tmp_path_factory.mktemp("scratch"))
    configured = Runtime(settings)
    configured.store.ensure_bucket()
    return configured


@pytest.fixture(scope="module")
def staged(rt, media_server):
    return stage_video(rt, "fenced", f"{media_server.url}/ep03-three-voices.ogg")


def stage_video(rt: Runtime, video_id: str, url: str) -> CommitRequest:
    """One real video through every stage but the commit: its CommitRequest."""
    spec = VideoSpec(video_id=video_id, url=url, batch_id="b")
    audio = run(DownloadActivities(rt).download_audio, spec, "1")
    diarization = run(DiarizeActivities(rt).diarize_audio, audio, "2")
    music = run(MusicActivities(rt).detect_music, audio, "3")
    embeddings = run(
        EmbedActivities(rt).embed_speakers, EmbedRequest(audio=audio, diarization=diarization), "4"
    )
    return CommitRequest(
        spec=spec,
        audio=audio,
        diarization=diarization,
        embeddings=embeddings,
        music=music,
        gpu_class="cpu",
        stage_seconds={},
        attempts={},
        worker_ids={},
    )


def test_each_attempt_writes_under_its_own_keys_and_results_name_them(rt, staged, media_server):
    keys = rt.store.keys("fenced")
    assert (
        staged.audio.original_key.startswith(keys.work_root)
        and staged.audio.attempt_id in staged.audio.original_key
    )
    assert staged.diarization.attempt_id in staged.diarization.key
    assert staged.diarization.attempt_id in staged.embeddings.key, (
        "embed's work is keyed by the diarization it read"
    )
    # a second attempt of the same stage reuses the finished result instead of rewriting it
    again = run(DiarizeActivities(rt).diarize_audio, staged.audio, "2", attempt=2)
    assert again.key == staged.diarization.key
    # an id reused for another URL does not reuse this download
    other = VideoSpec(video_id="fenced", url=f"{media_server.url}/ep05-radio-segment.ogg")
    assert (
        run(DownloadActivities(rt).download_audio, other, "1", attempt=3).original_key
        != staged.audio.original_key
    )


def test_embed_pools_the_diarizations_frames_and_encodes_again_only_without_them(rt, staged):
    """One CAM++ pass per recording: the diarize stage keeps each chunk's frames beside
    its checkpoint and the embed stage pools segments from them. A diarization recorded
    before it kept frames is embedded by a pass over each segment, under the older name."""
    store, diarization = rt.store, staged.diarization
    assert diarization.frames_dir and diarization.frame_chunks >= 1
    assert all(
        store.exists(layout.frames_key(diarization.frames_dir, i)) for i in range(diarization.frame_chunks)
    )
    assert staged.embeddings.backend == speaker_embeddings.FRAMES_BACKEND_NAME
    pooled = np.load(io.BytesIO(store.get_bytes(staged.embeddings.key)))

    older = diarization.model_copy(
        update={"frames_dir": None, "frame_chunks": 0, "attempt_id": "before-frames"}
    )
    again = run(EmbedActivities(rt).embed_speakers, EmbedRequest(audio=staged.audio, diarization=older), "4b")
    encoded = np.load(io.BytesIO(store.get_bytes(again.key)))
    assert again.backend == speaker_embeddings.BACKEND_NAME and encoded.shape == pooled.shape
    assert pooled.shape[0] == diarization.num_segments > 0
    assert np.nanmean((pooled * encoded).sum(axis=1)) > 0.8  # other vectors of the same voices


def test_commit_refuses_intermediates_that_do_not_match_their_results(rt, staged):
    # under an id of its own, so what another test committed for "fenced" is not in the way
    tampered = staged.model_copy(
        update={
            "spec": staged.spec.model_copy(update={"video_id": "tampered"}),
            "audio": staged.audio.model_copy(update={"sha256": "0" * 64}),
        }
    )
    with pytest.raises(ApplicationError) as info:
        run(CommitActivities(rt).commit_outputs, tampered, "5", run_id="run-tampered")
    assert info.value.type == IntermediateMismatch.__name__ and info.value.non_retryable
    assert rt.store.list_keys(rt.store.keys("tampered").root) == [], "nothing committed"


def test_commit_beside_an_orphan_then_nothing_overwrites_it(rt, staged):
    store = rt.store
    keys = store.keys("fenced")
    store.put_bytes(keys.rttm, b"half of a commit that never finished")  # an orphan, no marker
    outcome = run(CommitActivities(rt).commit_outputs, staged, "5")
    meta = store.get_json(keys.metadata)
    assert outcome.metadata_key == keys.metadata and meta["source"]["sha256"] == staged.audio.sha256
    assert meta["file_keys"] == {"diarization.rttm": keys.run_file("run-one", "diarization.rttm")}, (
        "the orphan may be another run's: it is not replaced, the commit names its own key"
    )
    named = [keys.metadata, *(meta.get("file_keys", {}).get(n) or keys.file(n) for n in meta["files"])]
    committed = {key: store.get_bytes(key) for key in named}
    assert all(
        store.sha256(keys.committed_file(Metadata.model_validate(meta), n))[0] == sha
        for n, sha in meta["files"].items()
    )
    vectors = np.load(io.BytesIO(committed[keys.embeddings]))
    assert vectors.shape[0] == len(meta["segments"])
    assert store.list_keys(keys.work_root) == [], "intermediates removed on commit"

    # a late finalize with other inputs (another run's) returns the commit, rewrites
    # nothing, and finishes a cleanup the committing attempt was killed in the middle of
    store.put_bytes(f"{keys.stage_dir('music', 'a1')}chunk-00009.npz", b"left by a kill mid-cleanup")
    late = staged.model_copy(update={"stage_seconds": {"download": 999.0}})
    assert (
        run(CommitActivities(rt).commit_outputs, late, "5", attempt=2, run_id="run-two").metadata_key
        == keys.metadata
    )
    assert store.list_keys(keys.work_root) == []
    # a late stage attempt cannot resurrect intermediates: its write is removed again
    with pytest.raises(AttemptSuperseded):
        FencedWrites(store, keys).put_bytes(f"{keys.stage_dir('diarize', 'old')}chunk-00001.npz", b"late")
    assert store.list_keys(keys.work_root) == []
    assert {key: store.get_bytes(key) for key in committed} == committed

    # the check every workflow runs first: done for this URL, a conflict for another
    assert run(CommitActivities(rt).committed_video, staged.spec, "0").metadata_key == keys.metadata
    with pytest.raises(ApplicationError) as info:
        run(
            CommitActivities(rt).committed_video,
            staged.spec.model_copy(update={"url": "http://127.0.0.1:1/other.ogg"}),
            "0",
        )
    assert info.value.type == VideoIdConflict.__name__ and info.value.non_retryable


def test_sweep_keeps_recent_work_and_removes_expired_work_and_committed_leftovers(rt, servers):
    """Intermediates follow their declared lifecycle. Time passing is injected: the
    expired video's objects are backdated on the storage server's disk (localbucket
    lists a file's mtime as LastModified)."""
    store = rt.store
    kept, expired, leftover = store.keys("sweep-recent"), store.keys("sweep-old"), store.keys("sweep-done")
    for keys in (kept, expired, leftover):
        store.put_bytes(keys.attempt_key("download", "", "r1-1-1", "original.wav"), b"audio")
        store.put_bytes(f"{keys.stage_dir('diarize', 'r1-1-1')}chunk-00000.npz", b"chunk")
    store.create_json(leftover.metadata, {"schema_version": 2})
    old = time.time() - (rt.settings.work_retention_days + 1) * 86400
    for key in store.list_keys(expired.work_root):
        os.utime(servers.config.data_dir / "s3" / store.bucket / key, (old, old))

    result = run(SweepActivities(rt).sweep_work, None, "sweep")
    assert (result.expired, result.committed_leftovers, result.objects) == (1, 1, 4)
    assert len(store.list_keys(kept.work_root)) == 2, "a failed video's work stays for its retry"
    assert store.list_keys(expired.work_root) == [] and store.list_keys(leftover.work_root) == []


def test_two_runs_commits_interleaved_commit_one_runs_bytes(rt, media_server, monkeypatch):
    """Issue 22, the cancel-restart-wake-up interleaving, with pauses injected where a
    paused machine would stop (before writing the marker); the storage and the commit
    are real. The new run places its files and pauses; the cancelled run's attempt
    wakes and finds the new run's stats.json under the usual key. Before, it deleted
    that file and wrote its own, and the new run's marker then named a hash the file no
    longer had. Now it puts its bytes under its own run's key, the new run's marker
    names exactly its bytes, and the stale attempt, having lost, removes what it made."""
    import threading

    from core.store.objects import ObjectStore

    store = rt.store
    new_run = stage_video(rt, "interleaved", f"{media_server.url}/ep05-radio-segment.ogg")
    stale_run = new_run.model_copy(update={"stage_seconds": {"download": 1234.5}})  # other stats.json
    keys = store.keys("interleaved")
    at_marker = {"run-new": threading.Event(), "run-stale": threading.Event()}
    go_on = {"run-new": threading.Event(), "run-stale": threading.Event()}
    real_create_json = ObjectStore.create_json

    def pausing_create_json(self, key, value):
        if key == keys.metadata:  # the fault: this run's machine pauses before its marker
            from temporalio import activity

            run_id = activity.info().workflow_run_id
            at_marker[run_id].set()
            assert go_on[run_id].wait(60)
        return real_create_json(self, key, value)

    monkeypatch.setattr(ObjectStore, "create_json", pausing_create_json)
    outcomes = {}

    def commit(request, run_id):
        outcomes[run_id] = run(CommitActivities(rt).commit_outputs, request, "9", run_id=run_id)

    new = threading.Thread(target=commit, args=(new_run, "run-new"))
    new.start()
    assert at_marker["run-new"].wait(120), "the new run placed its files"
    stale = threading.Thread(target=commit, args=(stale_run, "run-stale"))
    stale.start()
    assert at_marker["run-stale"].wait(120), "the stale attempt placed its files"
    go_on["run-new"].set()
    new.join(60)
    go_on["run-stale"].set()
    stale.join(60)

    meta = store.get_json(keys.metadata)
    assert meta["committed_by"]["run_id"] == "run-new"
    assert outcomes["run-stale"].metadata_key == keys.metadata, "the stale attempt returns the commit"
    for name, sha in meta["files"].items():
        key = meta.get("file_keys", {}).get(name) or keys.file(name)
        assert store.sha256(key)[0] == sha, f"{name}: the marker names bytes that are not there"
    assert "file_keys" not in meta, "the new run found its own bytes under the usual keys"
    assert not store.list_keys(f"{keys.root}runs/"), "the stale attempt removed what it made"
    assert store.list_keys(keys.work_root) == []


def test_a_run_that_finds_another_runs_file_commits_under_its_own_key(rt, media_server):
    """The reverse order: a stale attempt's stats.json holds the usual key and its
    worker died before its marker. The new run never deletes it: it commits its
    stats.json under its own run's key, and its marker says so."""
    store = rt.store
    request = stage_video(rt, "moved", f"{media_server.url}/ep05-radio-segment.ogg")
    keys = store.keys("moved")
    store.put_bytes(keys.stats, b'{"left": "by a run whose worker died before its marker"}')
    outcome = run(CommitActivities(rt).commit_outputs, request, "9", run_id="run-new")
    meta = store.get_json(keys.metadata)
    assert outcome.metadata_key == keys.metadata
    assert meta["file_keys"] == {"stats.json": keys.run_file("run-new", "stats.json")}
    assert store.sha256(meta["file_keys"]["stats.json"])[0] == meta["files"]["stats.json"]
    assert store.get_bytes(keys.stats).startswith(b'{"left"'), "another run's file is never deleted"
