"""Duplicate audio end to end on the embedded stack: the real worker, Temporal, S3 and
yt-dlp downloading from the local media server. One batch holds a recording, two
re-encodes of it under other URLs (MP3 64 kbps, 8 kHz), an unrelated recording, and a
longer one that holds the unrelated one after 30 s of other speech. The copies race in
one batch: exactly one of the three is processed, the other two commit as Duplicates of
it; the longer recording and the one it holds are both processed, and whichever claimed
second has the shared stretch marked and left out of its clips.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from core.contracts import search_attributes as sa
from core.contracts.clips import ClipPolicy
from core.contracts.search_attributes import Outcome
from core.contracts.video import Relation
from core.service.temporal import connect
from core.store.commit import read_metadata
from core.store.objects import ObjectStore
from core.training.clips import cut_clips
from devstack.media import ffmpeg, join
from starter.status import batch_progress, list_videos, wait_for_batch
from tests.conftest import SAMPLES, run_cli

pytestmark = pytest.mark.integration

BATCH = "dups"
COPIES = ("orig", "mp3", "k8")  # one recording under three URLs


@pytest.fixture(scope="module", autouse=True)
def worker(stack):
    stack.start_worker("worker-dups")


@pytest.fixture(scope="module")
def finished(stack, media_dir, media_server, tmp_path_factory):
    jingle = SAMPLES / "ep01-jingle-and-two-hosts.ogg"
    panel, meeting = SAMPLES / "ep02-panel-of-four.ogg", SAMPLES / "ep04-meeting-excerpt.ogg"
    ffmpeg("-i", str(jingle), "-c:a", "libmp3lame", "-b:a", "64k", str(media_dir / "dups-mp3.mp3"))
    ffmpeg("-i", str(jingle), "-ar", "8000", str(media_dir / "dups-8k.wav"))
    ffmpeg("-i", str(panel), "-c:a", "copy", str(media_dir / "dups-panel.ogg"))
    join(
        [meeting, panel],
        tmp_path_factory.mktemp("parts"),
        "-c:a",
        "pcm_s16le",
        str(media_dir / "dups-longer.wav"),
    )
    url = media_server.url
    rows = {
        "orig": f"{url}/ep01-jingle-and-two-hosts.ogg",
        "mp3": f"{url}/dups-mp3.mp3",
        "k8": f"{url}/dups-8k.wav",
        "panel": f"{url}/dups-panel.ogg",
        "longer": f"{url}/dups-longer.wav",
    }
    csv = tmp_path_factory.mktemp("csv") / "dups.csv"
    csv.write_text("video_id,url\n" + "".join(f"{vid},{u}\n" for vid, u in rows.items()))
    started = run_cli("-m", "starter", "start", "--csv", str(csv), "--batch-id", BATCH, env=stack.env())
    assert started.returncode == 0, started.stdout + started.stderr

    async def wait():
        client = await connect(stack.settings())
        await wait_for_batch(client, BATCH, timeout_s=900)
        return await batch_progress(client, BATCH), await list_videos(client, BATCH)

    progress, videos = asyncio.run(wait())
    store = ObjectStore(stack.settings())
    return progress, {row.video_id: row for row in videos}, {vid: read_metadata(store, vid) for vid in rows}


def test_copies_in_one_batch_commit_one_original_and_duplicates_of_it(stack, finished):
    progress, videos, meta = finished
    originals = [vid for vid in COPIES if meta[vid].duplicate_of is None]
    assert len(originals) == 1, {vid: meta[vid].duplicate_of for vid in COPIES}
    original = originals[0]
    assert meta[original].segments and meta[original].num_speakers == 3  # the jingle's voice, two hosts
    store = ObjectStore(stack.settings())
    for vid in set(COPIES) - {original}:
        copy = meta[vid]
        assert copy.duplicate_of == original and not copy.segments and not copy.files
        assert abs(copy.duration_s - meta[original].duration_s) < 1.0
        assert videos[vid].status == "Completed" and videos[vid].stage == Outcome.DUPLICATE
        keys = store.keys(vid)
        assert not store.exists(keys.original), "a Duplicate keeps no audio of its own"
        assert store.list_keys(keys.work_root) == [], "its download is dropped"
    assert videos[original].stage == Outcome.COMPLETED
    assert (progress.completed, progress.duplicates, progress.failed) == (3, 2, 0)
    assert abs(progress.duplicate_audio_s - 2 * meta[original].duration_s) < 2.0


def test_a_recording_holding_another_is_processed_with_the_stretch_left_out(finished):
    _, videos, meta = finished
    assert meta["panel"].duplicate_of is None and meta["longer"].duplicate_of is None
    marked = [vid for vid in ("panel", "longer") if meta[vid].shared_audio]
    assert len(marked) == 1, "only the one claimed second marks the stretch"
    later = meta[marked[0]]
    [stretch] = later.shared_audio
    earlier = "longer" if marked[0] == "panel" else "panel"
    assert stretch.video_id == earlier
    if marked[0] == "longer":  # it holds the panel after 30 s of the meeting
        assert stretch.relation is Relation.CONTAINS and abs(stretch.start_s - 30.0) <= 1.5
    else:  # the panel lies inside the longer recording, from its 30th second
        assert stretch.relation is Relation.CONTAINED and abs(stretch.other_start_s - 30.0) <= 1.5
    inside = [r for r in later.segments if r.duplicate_of]
    assert inside and all(r.duplicate_of == earlier for r in inside)
    assert all(
        r.end <= stretch.start_s + 0.5 or r.start >= stretch.end_s - 0.5
        for r in later.segments
        if not r.duplicate_of
    )
    clips = cut_clips(later, None, ClipPolicy())
    assert all(c.end <= stretch.start_s + 0.5 or c.start >= stretch.end_s - 0.5 for c in clips), clips


def test_status_report_manifest_and_search_attributes_show_the_duplicates(stack, finished):
    _, _, meta = finished
    status = run_cli("-m", "starter", "status", "--batch-id", BATCH, env=stack.env())
    assert "of the completed, 2 duplicates" in status.stdout, status.stdout
    report = run_cli("-m", "starter", "report", "--batch-id", BATCH, "--json", env=stack.env(), timeout=300)
    assert report.returncode == 0, report.stderr
    found = json.loads(report.stdout)["duplicates"]
    original = next(vid for vid in COPIES if meta[vid].duplicate_of is None)
    assert found["videos"] == 2 and abs(found["audio_h"] * 3600 - 2 * meta[original].duration_s) < 10
    assert found["compute_h_saved"] > 0
    assert found["shared_usable_h"] > 0

    async def listed():
        client = await connect(stack.settings())
        query = f'{sa.BATCH_ID.name} = "{BATCH}" AND {sa.PIPELINE_STAGE.name} = "{Outcome.DUPLICATE}"'
        return sorted([wf.id async for wf in client.list_workflows(query)])

    assert asyncio.run(listed()) == sorted(f"video-{vid}" for vid in COPIES if vid != original)
    today = datetime.now(UTC).date().isoformat()
    made = run_cli("-m", "starter", "manifest", "--date", today, env=stack.env(), timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    store = ObjectStore(stack.settings())
    lines = {
        line["video_id"]: line
        for line in map(
            json.loads, store.get_bytes(f"manifests/manifest_{today}.jsonl").decode().splitlines()
        )
    }
    for vid in COPIES:
        assert lines[vid]["duplicate_of"] == meta[vid].duplicate_of
        assert ("audio" in lines[vid]["outputs"]) == (vid == original)


def test_export_writes_no_shard_for_a_duplicate_and_leaves_the_shared_stretch_out(stack, finished, tmp_path):
    import webdataset as wds

    from core.contracts.export import ExportSpec
    from core.store.layout import ExportKeys

    _, _, meta = finished
    done = run_cli(
        "-m",
        "starter",
        "export",
        "--batch-id",
        BATCH,
        "--format",
        "webdataset",
        "--wait",
        env=stack.env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 duplicates" in done.stdout and "failed" not in done.stdout, done.stdout
    store = ObjectStore(stack.settings())
    keys = ExportKeys(store.prefix, ExportSpec(batch_id=BATCH, format="webdataset"))
    shards = {s["video_id"]: s for s in store.get_json(keys.index)["shards"]}
    assert set(shards) == {vid for vid in meta if not meta[vid].duplicate_of}
    marked = next(vid for vid in ("panel", "longer") if meta[vid].shared_audio)
    [stretch] = meta[marked].shared_audio
    spans = []
    for relative in shards[marked]["files"]:
        path = tmp_path / relative.replace("/", "_")
        path.write_bytes(store.get_bytes(f"{keys.root}{relative}"))
        for sample in wds.WebDataset(str(path), shardshuffle=False):
            start_ms, end_ms = sample["__key__"].rsplit("_", 2)[1:]  # a clip's id ends with its bounds
            spans.append((int(start_ms) / 1000, int(end_ms) / 1000))
    # the longer recording keeps the meeting's clips; the panel, inside it whole, keeps none
    assert bool(spans) == (marked == "longer"), spans
    assert all(e <= stretch.start_s + 0.5 or s >= stretch.end_s - 0.5 for s, e in spans), spans
