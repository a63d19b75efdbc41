"""served_gpu_classes: which GPU classes have a worker polling their queue right now.

A VideoWorkflow asks before it moves a video up the ladder (too long for its class, or
out of memory at batch 1): on a fleet of T4s alone, an a10 queue has no poller, and a
video sent there would wait hours for a worker that never comes, holding its batch's
window slot. Temporal lists a queue's pollers seen in the last minutes.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from activities.attempts import stage
from activities.runtime import Activities
from core.contracts import queues
from core.contracts.video import ServedClassesRequest
from core.service.temporal import connect


class QueueActivities(Activities):
    @activity.defn
    async def served_gpu_classes(self, request: ServedClassesRequest) -> list[str]:
        """The classes among ``request.classes`` whose GPU queue has a poller, in order."""
        with stage(self.rt):
            client = await connect(self.rt.settings)
            served = []
            for gpu_class in request.classes:
                answer = await client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=client.namespace,
                        task_queue=TaskQueue(name=queues.gpu_queue(request.queue_prefix, gpu_class)),
                        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                    )
                )
                if answer.pollers:
                    served.append(gpu_class)
            return served
