"""The stage table is the one description of a video's stages: every stage has exactly
one entry, each entry's activity takes one typed input, and the worker registers each
activity on the queue kind its entry names."""

from __future__ import annotations

import typing

import pytest
from temporalio import activity

from core.contracts.stages import MODEL_STAGES, Stage
from workers.worker import CPU_LIGHT_ACTIVITIES
from workflows.stages import REGISTERED, STAGES, QueueKind, activities_on


def test_every_stage_has_one_entry_in_pipeline_order():
    assert [spec.stage for spec in STAGES] == list(Stage)
    assert {spec.stage for spec in STAGES if spec.queue is QueueKind.GPU} == set(MODEL_STAGES)


def test_each_activity_takes_one_typed_input_and_returns_a_typed_result():
    for spec in STAGES:
        definition = activity._Definition.must_from_callable(spec.activity)
        hints = typing.get_type_hints(spec.activity)
        assert len(definition.arg_types or []) == 1, spec.stage
        assert hints["return"] is not typing.Any and definition.ret_type is not None, spec.stage


def test_queue_kinds_partition_the_stages():
    by_kind = [activities_on(kind) for kind in QueueKind]
    assert sum(len(group) for group in by_kind) == len(REGISTERED)
    assert all(a in CPU_LIGHT_ACTIVITIES for a in activities_on(QueueKind.LOCAL)), (
        "local ones run on the workflow worker"
    )
    names = [activity._Definition.must_from_callable(spec.activity).name for spec in REGISTERED]
    assert len(set(names)) == len(names)


def test_the_worker_binds_every_activity_to_its_runtime():
    """Activities read settings and storage from the Runtime the worker injects, not from
    a module global: every registered method is bound to an instance holding it."""
    from activities.commit import CommitActivities
    from activities.runtime import Runtime, bind
    from core.service.settings import Settings
    from workers.worker import ACTIVITY_CLASSES

    rt = Runtime(Settings(), "cpu")
    instances = [cls(rt) for cls in ACTIVITY_CLASSES]
    for method in [*CPU_LIGHT_ACTIVITIES, *(spec.activity for spec in STAGES)]:
        bound = bind(method, instances)
        assert bound.__self__.rt is rt and bound.__func__ is method, method.__qualname__

    class Unregistered:
        @activity.defn
        def nowhere(self, arg: str) -> str:
            return arg

    with pytest.raises(LookupError, match="nowhere"):
        bind(Unregistered.nowhere, instances)

    class Inherited(CommitActivities):
        pass

    heir = Inherited(rt)
    assert bind(CommitActivities.committed_video, [heir]).__self__ is heir, "an inherited activity binds"
    with pytest.raises(LookupError, match="2 instances"):
        bind(CommitActivities.committed_video, [heir, CommitActivities(rt)])
