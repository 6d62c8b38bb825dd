"""Progress for long steps (download, backup): a bar on a terminal, a few plain lines otherwise.

Plain lines keep logs (journald, Ansible, CI) readable: one line per quarter instead of a redrawn bar.
"""

from __future__ import annotations

import time
from typing import TextIO

MIB = 1024 * 1024
_BAR_WIDTH = 30
_REDRAW_SECONDS = 0.2


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


class Progress:
    """Progress of one step measured in bytes; total may be unknown (0)."""

    def __init__(self, stream: TextIO, label: str, total: int, tty: bool) -> None:
        self.stream = stream
        self.label = label
        self.total = max(0, total)
        self.tty = tty
        self.done = 0
        self._last_draw = 0.0
        self._next_quarter = 25
        if not tty:
            size = f" ({human_size(self.total)})" if self.total else ""
            self._line(f"{label}{size}...")

    def update(self, done: int) -> None:
        self.done = done
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= _REDRAW_SECONDS:
                self._last_draw = now
                self._draw()
        elif self.total:
            percent = self.done * 100 // self.total
            while percent >= self._next_quarter and self._next_quarter < 100:
                self._line(f"{self.label}: {self._next_quarter}%")
                self._next_quarter += 25

    def finish(self, summary: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self._line(summary)

    def _draw(self) -> None:
        if self.total:
            fraction = min(1.0, self.done / self.total)
            filled = int(fraction * _BAR_WIDTH)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            sizes = f"{human_size(self.done)}/{human_size(self.total)}"
            text = f"{self.label} [{bar}] {fraction * 100:3.0f}% {sizes}"
        else:
            text = f"{self.label} {human_size(self.done)}"
        self.stream.write("\r\033[K" + text)
        self.stream.flush()

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
