"""``benchmarks.fleet --validate``: the fleet model checked against the real
orchestration: a small batch of the same structure on the embedded Temporal stack (the
real VideoWorkflow; stand-in activities under the real names that sleep their simulated
duration times a time scale), its GPU-slot busy fraction measured from the activities' start
and end times and printed next to the simulation's prediction."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from benchmarks.fleet_model import GPU_STAGES, Params, Result, Video, simulate_pipelined
from benchmarks.stand_ins import stand_in_activities
from core.contracts import gpu_profiles, queues
from core.contracts.stages import Stage

# --- validation on the real orchestration ------------------------------------------
_VALIDATE: dict = {"videos": {}, "scale": 1.0, "gpu": [], "max_s": 6 * 3600.0}


def _standins():
    """The pipeline's activities as sleeps of each video's simulated stage durations
    (scaled); GPU stages record when they ran, for the measured busy fraction."""

    async def wait(video_id: str, stage: Stage) -> None:
        began = time.monotonic()
        # stages the simulation does not model (the labels stage) take no time here either
        await asyncio.sleep(_VALIDATE["videos"][video_id].s.get(stage, 0.0) * _VALIDATE["scale"])
        if stage in GPU_STAGES:
            _VALIDATE["gpu"].append((began, time.monotonic()))

    def duration(video_id: str) -> float:  # capped: no escalation in the simulation
        return min(_VALIDATE["videos"][video_id].audio_h * 3600, _VALIDATE["max_s"])

    return stand_in_activities(wait, duration)


def _prepare_validation(p: Params, videos: list[Video], target_s: float) -> tuple[Result, float]:
    """The simulation's prediction and the time scale that makes it last ``target_s``; sets
    the stand-ins' shared state for this batch."""
    predicted = simulate_pipelined(p, videos)
    scale = target_s / predicted.makespan_s
    _VALIDATE.update(
        videos={f"fleet-{v.vid}": v for v in videos},
        scale=scale,
        gpu=[],
        max_s=gpu_profiles.profile_for(p.gpu_class).max_audio_h * 3600,
    )
    return predicted, scale


def _validation_workers(client, p: Params, stand_ins, prefix: str, scale: float) -> list:
    """The workflow, download and GPU workers of the fleet, sized as ``p`` (not started)."""
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.worker import Worker

    from workflows.sandbox import workflow_runner
    from workflows.video import VideoWorkflow

    executor = ThreadPoolExecutor(8)
    rate = p.download_rate / scale if p.download_rate else None
    return [
        Worker(
            client,
            task_queue=queues.workflow_queue(prefix),
            workflows=[VideoWorkflow],
            workflow_runner=workflow_runner(),
            max_concurrent_workflow_tasks=64,
            activities=stand_ins.commit,
            activity_executor=executor,
            max_concurrent_local_activities=p.commit_slots,
        ),
        Worker(
            client,
            task_queue=queues.download_queue(prefix),
            activities=stand_ins.download,
            activity_executor=executor,
            max_concurrent_activities=p.download_slots,
            max_task_queue_activities_per_second=rate,
        ),
        Worker(
            client,
            task_queue=queues.gpu_queue(prefix, p.gpu_class),
            activities=stand_ins.gpu,
            activity_executor=executor,
            max_concurrent_activities=p.slots,
        ),
    ]


async def _run_videos(client, p: Params, videos: list[Video], prefix: str) -> float:
    """Run every video's VideoWorkflow, at most ``p.window`` at once; the wall seconds taken."""
    from core.contracts.video import VideoJob, VideoSpec
    from workflows.video import VideoWorkflow

    window = asyncio.Semaphore(p.window)
    began = time.monotonic()

    async def one(v: Video) -> None:
        async with window:
            spec = VideoSpec(video_id=f"fleet-{v.vid}", url="http://127.0.0.1/x.ogg", batch_id="fleet")
            job = VideoJob(spec=spec, queue_prefix=prefix, gpu_class=p.gpu_class)
            handle = await client.start_workflow(
                VideoWorkflow.run,
                job,
                id=f"video-fleet-{v.vid}-{began}",
                task_queue=queues.workflow_queue(prefix),
            )
            await handle.result()

    await asyncio.gather(*(one(v) for v in videos))
    return time.monotonic() - began


def _print_validation(
    p: Params, videos: list[Video], predicted: Result, scale: float, busy: float, makespan: float
) -> None:
    print(
        f"validate: {len(videos)} videos on the embedded Temporal stack, real VideoWorkflow, stand-in "
        "activities "
        f"sleeping simulated seconds x {scale:.5f}"
    )
    print(
        f"validate: {p.slots} GPU slots, window {p.window}, {p.download_slots} download / {p.commit_slots} "
        "commit slots"
    )
    print(f"{'':<22} {'busy':>6} {'makespan (sim s)':>17}")
    print(f"{'simulated':<22} {predicted.busy:>6.3f} {predicted.makespan_s:>17.0f}")
    print(f"{'real orchestration':<22} {busy:>6.3f} {makespan / scale:>17.0f}   ({makespan:.1f} s wall)")
    gpu_tasks = 3 * len(videos)
    extra_idle = p.slots * (makespan * (1 - busy) - predicted.makespan_s * scale * (1 - predicted.busy))
    print(
        f"validate: real/simulated busy {busy / predicted.busy:.3f}; the gap is "
        f"~{extra_idle / gpu_tasks * 1000:.0f} ms "
        f"of extra idle slot time per GPU activity (dispatch latency, real seconds, not scaled)"
    )


async def validate(p: Params, videos: list[Video], target_s: float, data: Path) -> int:
    from core.service.temporal import connect
    from devstack.stack import REPO_ROOT, Stack, StackConfig

    predicted, scale = _prepare_validation(p, videos, target_s)
    prefix = "fleet"
    stand_ins = _standins()
    stack = Stack(StackConfig.ephemeral(data, REPO_ROOT / "samples" / "audio"))
    stack.start_temporal()
    try:
        client = await connect(stack.settings())
        workers = _validation_workers(client, p, stand_ins, prefix, scale)
        tasks = [asyncio.create_task(w.run()) for w in workers]
        makespan = await _run_videos(client, p, videos, prefix)
        busy = sum(e - s for s, e in _VALIDATE["gpu"]) / (p.slots * makespan)
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stack.stop()
    _print_validation(p, videos, predicted, scale, busy, makespan)
    return 0


def run_validation(p: Params, videos: list[Video], target_s: float) -> None:
    from benchmarks.scratch import run_in_scratch

    run_in_scratch("fleet-", lambda tmp: validate(p, videos, target_s, tmp))
