"""The bucket boundaries of the hooks' histograms, chosen for LLM streams."""

from __future__ import annotations

__all__ = ["DURATION_BUCKETS", "ITEMS_BUCKETS", "LATENESS_BUCKETS", "TIME_TO_FIRST_PROGRESS_BUCKETS"]

TIME_TO_FIRST_PROGRESS_BUCKETS = (
    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0,
)  # fmt: skip
"""Seconds to the first item that counts (time to first token): 50 ms to 2 minutes."""

LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds from a limit to the moment the consumer was told: 1 ms to 10 s."""

ITEMS_BUCKETS = (
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0,
    1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0, 100_000.0,
)  # fmt: skip
"""Items delivered by one stream: 1 to 100,000."""

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Seconds from the first pull to the end of a stream: 100 ms to 10 minutes."""
