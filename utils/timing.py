"""A stopwatch for the results log: `with Timer() as t: ...; t.seconds`."""

from __future__ import annotations

import time


class Timer:
    """Measure the wall time of a `with` block; `seconds` is readable during and after it."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.end: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self.end = time.perf_counter()

    @property
    def seconds(self) -> float:
        return (self.end or time.perf_counter()) - self.start
