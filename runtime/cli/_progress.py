"""A dependency-free progress bar: one redrawn line on a terminal, a few plain lines
otherwise (a log file or a pipe gets one line per tenth of the work)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """Shows ``done/total`` with the rate and the current superstep.

    On a TTY the line is redrawn in place (``\\r`` and ANSI erase-line), at most
    every ``min_interval`` seconds; elsewhere a line is printed each time another
    tenth of the work is done, so logs stay short and their content predictable.
    """

    def __init__(
        self,
        stream: TextIO,
        total: int,
        *,
        label: str = "",
        unit: str = "items",
        tty: bool | None = None,
        min_interval: float = 0.05,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.stream = stream
        self.total = total
        self.label = label
        self.unit = unit
        self.tty = stream.isatty() if tty is None else tty
        self.min_interval = min_interval
        self.clock = clock
        self.done = 0
        self.superstep = 0
        self._t0 = clock()
        self._last_draw = float("-inf")
        self._last_tenth = -1
        self._drew_finished = False
        self._closed = False

    def update(self, done: int | None = None, *, superstep: int | None = None) -> None:
        if done is not None:
            self.done = done
        if superstep is not None:
            self.superstep = superstep
        if self.tty:
            now = self.clock()
            finished = self.done >= self.total and not self._drew_finished
            if finished or now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self._drew_finished = self.done >= self.total
                self.stream.write("\r" + self._bar_line() + "\x1b[K")
                self.stream.flush()
        else:
            tenth = 10 * self.done // self.total if self.total > 0 else 10
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self._plain_line() + "\n")
                self.stream.flush()

    def close(self) -> None:
        """Finish the bar (a TTY gets its final state and a newline)."""
        if self._closed:
            return
        self._closed = True
        if self.tty:
            self.stream.write("\r" + self._bar_line() + "\x1b[K\n")
            self.stream.flush()

    # -- rendering ------------------------------------------------------------------
    def _fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 1.0

    def _stats(self) -> str:
        elapsed = self.clock() - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.done:,}/{self.total:,} {self.unit}  {rate:,.0f}/s  "
            f"superstep {self.superstep}  {elapsed:.1f}s"
        )

    def _bar_line(self) -> str:
        frac = self._fraction()
        stats = self._stats()
        prefix = f"{self.label} " if self.label else ""
        columns = shutil.get_terminal_size((80, 24)).columns
        width = max(10, min(30, columns - len(prefix) - 60))
        filled = round(frac * width)
        bar = "#" * filled + "-" * (width - filled)
        return f"{prefix}[{bar}] {frac * 100:3.0f}%  {stats}"[: columns - 1]

    def _plain_line(self) -> str:
        prefix = f"{self.label}: " if self.label else ""
        return f"{prefix}{self._fraction() * 100:3.0f}%  {self._stats()}"
