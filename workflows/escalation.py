"""Where a video moves when its GPU class cannot take it: pure, so the workflow stays
deterministic and the choice is tested without Temporal.

The ladder (``core.contracts.gpu_profiles.ESCALATION``) says which class would take it; the
served classes (``activities.queues``) say which have a worker now. A video never moves
to a queue nobody polls: it goes to the class it needs or the smallest served one above
it; failing that, ``Escalation.LARGEST_SERVED`` keeps it on the largest served class
between where it is and where it should go (smaller batches, more time), and
``Escalation.FAIL`` (or nothing to run on) fails it ``NoWorkerForClass`` at once.
"""

from __future__ import annotations

from core.contracts.gpu_profiles import classes_above
from core.contracts.video import Escalation


def choose_class(
    current: str, wanted: str, served: list[str], policy: Escalation, must_move: bool
) -> str | None:
    """The class to run on, or None: fail. ``must_move``: staying on ``current`` is no
    option (out of memory at batch 1 there)."""
    ladder = classes_above(current)
    if wanted not in ladder:
        return wanted
    at = ladder.index(wanted)
    for gpu_class in ladder[at:]:
        if gpu_class in served:
            return gpu_class
    if policy is Escalation.FAIL:
        return None
    below = [gpu_class for gpu_class in ladder[:at] if gpu_class in served]
    if below:
        return below[-1]
    return None if must_move else current
