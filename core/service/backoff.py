"""Waits between retries that a fleet does not take in lockstep.

After a storage or Temporal outage every worker's retries would otherwise fire at the
same instants (1 s, 2 s, 4 s ... after the same failure) and hit the recovering service
together. "Equal jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter")
keeps at least half of each exponential step and spreads the rest at random.
"""

from __future__ import annotations

import random


def jittered(delay_s: float) -> float:
    """A wait of between half of ``delay_s`` and all of it, at random."""
    return delay_s / 2 + random.uniform(0.0, delay_s / 2)
