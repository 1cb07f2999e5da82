"""Progress in a job's log: tqdm bars (per image, iteration or epoch, with rates) that a person
tailing results/logs/<rule>/... can follow. In a log file each update is its own line, every
LOG_INTERVAL seconds; at a terminal the bar redraws in place as usual."""
from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL = 15.0  # seconds between lines in a log file: a long job's log stays readable


class _Lines:
    """stderr for a log file: tqdm's carriage-return redraws become new lines, so `tail -f` and
    an editor show every update instead of one ever-growing line."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text.replace("\r", "\n"))

    def flush(self) -> None:
        sys.stderr.flush()


def progress(iterable=None, *, desc: str, total: int | None = None, unit: str = "it", initial: int = 0) -> tqdm:
    """A tqdm bar on stderr (the rule's log): use it around a loop, or call `update(n)` yourself."""
    at_terminal = sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, unit=unit, initial=initial, file=sys.stderr if at_terminal else _Lines(),
                mininterval=0.5 if at_terminal else LOG_INTERVAL, ascii=not at_terminal, dynamic_ncols=at_terminal,
                smoothing=0.1)
