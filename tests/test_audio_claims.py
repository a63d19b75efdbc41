"""Claims on each video's audio: the claim log, the index and the claim activity on the
real S3-compatible server with real fingerprints (ffmpeg's chromaprint muxer) of the
sample recordings and their re-encodes. The activities run in temporalio's
ActivityEnvironment (the SDK's harness: an activity context without a server); each
``AudioClaimActivities`` instance stands for one worker process, with its own index.
One fault is injected (``FlakyCreates``): dropped connections on the claim log's creates.
The same path through real workflows is tests/test_duplicates.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
from temporalio.testing import ActivityEnvironment

from activities.audio_claims import AudioClaimActivities
from activities.runtime import Runtime
from core.contracts.corpus import ClaimEntry, OriginalCheck, OriginalState
from core.contracts.video import AudioClaim, ClaimRequest, Relation
from core.corpus.audio_index import AudioIndex, index_keys
from core.corpus.fingerprints import Fingerprint, fingerprint
from core.store.audio_claims import ClaimLog
from devstack.media import ffmpeg, join
from tests.conftest import SAMPLES

pytestmark = pytest.mark.integration


def run(activity_fn, arg, attempt: int = 1):
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return env.run(activity_fn, arg)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """A sample, its re-encodes (MP3 64 kbps, 8 kHz), an unrelated sample, and one that
    holds it after 30 s of other speech."""
    d = tmp_path_factory.mktemp("claims")
    jingle, panel, meeting = (
        SAMPLES / n
        for n in ("ep01-jingle-and-two-hosts.ogg", "ep02-panel-of-four.ogg", "ep04-meeting-excerpt.ogg")
    )
    ffmpeg("-i", str(jingle), "-c:a", "libmp3lame", "-b:a", "64k", str(d / "mp3.mp3"))
    ffmpeg("-i", str(jingle), "-ar", "8000", str(d / "8k.wav"))
    join([meeting, jingle], d / "parts", "-c:a", "pcm_s16le", str(d / "longer.wav"))
    return {
        "orig": jingle,
        "mp3": d / "mp3.mp3",
        "8k": d / "8k.wav",
        "other": panel,
        "longer": d / "longer.wav",
    }


@pytest.fixture(scope="module")
def fingerprints(recordings) -> dict[str, Fingerprint]:
    return {name: fingerprint(path) for name, path in recordings.items()}


_prefixes = iter(range(1000))


@pytest.fixture
def rt(servers, tmp_path):
    """A runtime on a claim log of its own (a fresh key prefix per test)."""
    settings = servers.settings(s3_bucket="claims", s3_prefix=f"t{next(_prefixes)}/", work_dir=tmp_path)
    runtime = Runtime(settings)
    runtime.store.ensure_bucket()
    return runtime


def request(rt: Runtime, video_id: str, fp: Fingerprint) -> ClaimRequest:
    key = f"{rt.store.prefix}_work/{video_id}/fingerprint.cpfp"
    rt.store.put_bytes(key, fp.to_bytes())
    return ClaimRequest(video_id=video_id, fingerprint_key=key, duration_s=round(fp.duration_s, 3))


def claim(rt: Runtime, worker: AudioClaimActivities, video_id: str, fp: Fingerprint) -> AudioClaim:
    result: AudioClaim = run(worker.claim_audio, request(rt, video_id, fp))
    return result


def test_index_keys_survive_a_reencode_and_name_the_original(fingerprints):
    """A re-encode keeps enough of the original's keys to be named, an unrelated
    recording is not; keys are content-defined, so a shifted copy keeps them too."""
    index = AudioIndex()
    index.add("orig", index_keys(fingerprints["orig"]))
    index.add("other", index_keys(fingerprints["other"]))
    for copy in ("mp3", "8k", "longer"):
        found = dict(index.candidates(index_keys(fingerprints[copy])))
        assert "orig" in found and "other" not in found, (copy, found)
    index.leave_out("orig")
    assert "orig" not in dict(index.candidates(index_keys(fingerprints["mp3"])))


@pytest.mark.parametrize("order", [("orig", "mp3", "8k", "other"), ("8k", "other", "mp3", "orig")])
def test_copies_have_one_original_the_first_claimed(rt, fingerprints, order):
    worker = AudioClaimActivities(rt)
    claims = {name: claim(rt, worker, name, fingerprints[name]) for name in order}
    first = next(name for name in order if name != "other")
    assert claims[first].duplicate_of is None and claims["other"].duplicate_of is None
    assert {n: c.duplicate_of for n, c in claims.items() if n not in (first, "other")} == {
        n: first for n in ("orig", "mp3", "8k") if n != first
    }
    assert [c.seq for c in sorted(claims.values(), key=lambda c: c.seq)] == [1, 2, 3, 4]
    # a retry (or a second worker that has read nothing yet) answers the same claim
    again = claim(rt, AudioClaimActivities(rt), "mp3", fingerprints["mp3"])
    assert (again.seq, again.duplicate_of) == (claims["mp3"].seq, claims["mp3"].duplicate_of)
    assert ClaimLog(rt.store).numbers_after(0) == [1, 2, 3, 4], "a retry writes nothing"


def test_a_recording_that_holds_a_claimed_one_is_processed_with_the_stretch_marked(rt, fingerprints):
    worker = AudioClaimActivities(rt)
    claim(rt, worker, "orig", fingerprints["orig"])
    longer = claim(rt, worker, "longer", fingerprints["longer"])
    assert longer.duplicate_of is None
    [shared] = longer.shared
    assert shared.video_id == "orig" and shared.relation is Relation.CONTAINS
    assert abs(shared.start_s - 30.0) <= 1.5 and abs(shared.end_s - 68.0) <= 1.5, shared
    assert shared.other_start_s <= 1.5 and shared.bit_error < 0.2


def test_claimers_racing_in_separate_processes_agree_on_one_original(rt, fingerprints):
    """Six workers (each its own index) claim six copies at once: the log's create-if-
    absent lets one entry have each number, so exactly one copy is the original."""
    names = ["orig", "mp3", "8k"] * 2
    requests = [request(rt, f"{name}-{i}", fingerprints[name]) for i, name in enumerate(names)]
    gate = threading.Barrier(len(requests))
    results: dict[str, AudioClaim] = {}

    def claimer(req: ClaimRequest) -> None:
        worker = AudioClaimActivities(rt)
        gate.wait()
        results[req.video_id] = run(worker.claim_audio, req)

    threads = [threading.Thread(target=claimer, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    originals = [vid for vid, c in results.items() if c.duplicate_of is None]
    assert len(originals) == 1, results
    assert all(c.duplicate_of == originals[0] for vid, c in results.items() if vid != originals[0])
    assert results[originals[0]].seq == 1
    assert ClaimLog(rt.store).numbers_after(0) == list(range(1, len(names) + 1))


def test_the_log_never_lets_a_number_be_written_twice(rt):
    log = ClaimLog(rt.store)
    first = ClaimEntry(kind="claim", video_id="a")
    assert log.append(1, first)
    assert not log.append(1, ClaimEntry(kind="claim", video_id="b"))
    assert log.read(1) == first
    assert log.numbers_after(0) == [1] and log.numbers_after(1) == []


def test_a_copy_of_a_lost_original_claims_again_and_becomes_the_original(rt, fingerprints):
    worker = AudioClaimActivities(rt)
    claim(rt, worker, "orig", fingerprints["orig"])
    copy = claim(rt, worker, "mp3", fingerprints["mp3"])
    assert copy.duplicate_of == "orig"
    check = OriginalCheck(video_id="orig", duplicate="mp3")
    # no workflow of that id has run on this server, and nothing is committed: lost
    assert asyncio.run(run(worker.original_state, check)) is OriginalState.LOST
    other_worker = AudioClaimActivities(rt)  # releases are read by every worker
    run(other_worker.release_claim, check)
    run(worker.release_claim, check)  # released already: nothing more is written
    assert len(ClaimLog(rt.store).numbers_after(0)) == 3
    again = claim(rt, worker, "mp3", fingerprints["mp3"])
    assert again.duplicate_of is None and again.seq == 4
    assert claim(rt, other_worker, "8k", fingerprints["8k"]).duplicate_of == "mp3"
    # the lost original, run again later, is now the copy
    assert claim(rt, worker, "orig", fingerprints["orig"]).duplicate_of == "mp3"


class FlakyCreates:
    """Fault injected into the real S3 client: the next ``times`` conditional creates of a
    claim-log entry fail with a dropped connection, after the server stored the entry
    (``lost_answer``: a reply lost on the way back, as a kill or a network cut between
    the write and the reply gives) or before it (an outage). Every other call is real."""

    def __init__(self, client, times: int, lost_answer: bool) -> None:
        self.left, self.lost_answer = times, lost_answer
        self.real = client.put_object
        self.failed = 0

    def __call__(self, **kwargs):
        from botocore.exceptions import ConnectionClosedError

        if self.left and "IfNoneMatch" in kwargs and "/claims/" in kwargs["Key"]:
            self.left -= 1
            self.failed += 1
            if self.lost_answer:
                self.real(**kwargs)
            raise ConnectionClosedError(endpoint_url="http://127.0.0.1")
        return self.real(**kwargs)


@pytest.mark.parametrize(
    "lost_answer, times", [(True, 1), (False, 2)], ids=["reply-lost-after-the-write", "outage-before"]
)
def test_a_claim_rides_out_a_failed_create_and_takes_its_number_once(
    rt, fingerprints, monkeypatch, lost_answer, times
):
    """The store retries the create through the outage; where the first create had in
    fact landed, the retry finds the number taken, the claimer reads on, finds its own
    entry and answers it: one entry, one original, whichever way the create failed."""
    rt.store.ride_out_s = 30.0
    worker = AudioClaimActivities(rt)
    flaky = FlakyCreates(rt.store._client, times=times, lost_answer=lost_answer)
    monkeypatch.setattr(rt.store._client, "put_object", flaky)
    first = claim(rt, worker, "orig", fingerprints["orig"])
    assert flaky.failed == times  # every injected failure happened
    assert (first.seq, first.duplicate_of) == (1, None)
    assert ClaimLog(rt.store).numbers_after(0) == [1]
    assert ClaimLog(rt.store).read(1).video_id == "orig"
    copy = claim(rt, AudioClaimActivities(rt), "mp3", fingerprints["mp3"])
    assert (copy.seq, copy.duplicate_of) == (2, "orig")


def test_index_memory_and_answers_stay_small_as_it_grows():
    """Synthetic keys (uniform, as a corpus' pair keys are): 5,000 videos of ~50 min
    each; a new video's own keys find it first, random keys find nothing."""
    rng = np.random.default_rng(0)
    index = AudioIndex()
    kept = {}
    for i in range(5000):
        keys = np.unique(rng.integers(0, 2**32, 1500, dtype=np.uint64).astype(np.uint32))
        index.add(f"v{i}", keys)
        if i % 1000 == 0:
            kept[f"v{i}"] = keys
    for vid, keys in kept.items():
        assert index.candidates(keys[::3])[0] == (vid, len(keys[::3]))
    assert index.candidates(np.unique(rng.integers(0, 2**32, 1500, dtype=np.uint64).astype(np.uint32))) == []
    assert index.memory_bytes() <= 8 * 5000 * 1500


@pytest.mark.parametrize("serve", [True, False])
def test_only_workers_that_serve_claims_poll_the_claim_queue_and_hold_an_index(servers, tmp_path, serve):
    """A large fleet names one or two claiming workers: the others never poll the
    claim queue, so they never build the index."""
    from concurrent.futures import ThreadPoolExecutor

    from core.contracts import queues
    from core.service.temporal import connect
    from workers.worker import _workers

    settings = servers.settings(s3_bucket="claims", work_dir=tmp_path, serve_claims=serve)

    async def served() -> list[str]:
        client = await connect(settings)
        with ThreadPoolExecutor(4) as pool:
            _, names = _workers(client, Runtime(settings), 1, pool)
        return names

    names = asyncio.run(served())
    assert queues.workflow_queue(settings.task_queue_prefix) in names
    assert (queues.claim_queue(settings.task_queue_prefix) in names) == serve
