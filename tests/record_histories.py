"""Record the workflow histories that tests/test_replay.py replays.

    python -m tests.record_histories      # writes tests/histories/<today>/*.json

A batch runs for days; its workers get new code while hundreds of videos are in
flight, and each of those replays its history on the new code. Recorded into a folder
of the day, beside the older recordings, which stay as long as a run of their code
may still be in flight: a batch of two videos (one completes, one is silent) whose
BatchWorkflow continues as new, a daily manifest, and the batch's export, one page per
run, so its ExportWorkflow continues as new too. Runs the real embedded stack and
worker; takes about a minute.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.contracts import queues
from core.contracts.export import ExportJob, ExportSpec
from core.service.exit import exit_now
from core.service.temporal import connect
from core.store.layout import batch_input_key
from core.store.objects import ObjectStore
from devstack.stack import REPO_ROOT, Stack, StackConfig
from starter.batch import start_batch
from starter.status import wait_for_batch
from tests.conftest import SAMPLES, write_wav

HISTORIES = Path(__file__).parent / "histories"
BATCH = "replay"


async def record(stack: Stack, media: Path) -> list[Path]:
    client = await connect(stack.settings())
    csv_path = media / "videos.csv"
    csv_path.write_text(
        f"video_id,url\nreplay-good,{stack.media_url}/ep03-three-voices.ogg\nreplay-silent,{stack.media_url}/silent.wav\n"
    )
    await start_batch(client, stack.settings(), csv_path, BATCH, window=1, max_events_per_run=12)
    await wait_for_batch(client, BATCH, timeout_s=600)
    today = datetime.now(UTC).date().isoformat()
    prefix = stack.settings().task_queue_prefix
    await client.execute_workflow(
        "ManifestWorkflow",
        args=[prefix, today],
        id=f"manifest-{today}",
        task_queue=queues.workflow_queue(prefix),
    )
    store = ObjectStore(stack.settings())
    job = ExportJob(
        spec=ExportSpec(batch_id=BATCH, format="webdataset"),
        input_key=batch_input_key(store.prefix, BATCH),
        queue_prefix=prefix,
        page_size=1,
        pages_per_run=1,
    )
    await client.execute_workflow(
        "ExportWorkflow", job, id=f"export-{BATCH}", task_queue=queues.workflow_queue(prefix)
    )

    written = []
    queries = {
        "video_completed": 'WorkflowId = "video-replay-good"',
        "video_failed": 'WorkflowId = "video-replay-silent"',
        "batch": f'WorkflowId = "batch-{BATCH}"',
        "manifest": f'WorkflowId = "manifest-{today}"',
        "export": f'WorkflowId = "export-{BATCH}"',
    }
    folder = HISTORIES / today
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    for name, query in queries.items():
        runs = sorted([wf async for wf in client.list_workflows(query)], key=lambda wf: wf.start_time)
        for i, wf in enumerate(runs):
            history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
            path = folder / (f"{name}_run{i + 1}.json" if len(runs) > 1 else f"{name}.json")
            path.write_text(history.to_json())
            written.append(path)
    return written


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="record-histories-") as tmp:
        media = Path(tmp) / "media"
        media.mkdir()
        shutil.copy(SAMPLES / "ep03-three-voices.ogg", media)
        write_wav(media / "silent.wav", np.zeros(16_000 * 5, dtype=np.float32))
        with Stack(StackConfig.ephemeral(Path(tmp) / "stack", media)) as stack:
            written = asyncio.run(record(stack, media))
    for path in written:
        print(f"{path.relative_to(REPO_ROOT)}: {path.stat().st_size:,} bytes")
    exit_now(0)


if __name__ == "__main__":
    main()
