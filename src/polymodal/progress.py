"""Progress bars for long work (rich), one helper used everywhere."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, soft_wrap=True)  # a long path stays on one line


@contextmanager
def progress_bar(description: str, total: int | None, *, enabled: bool = True
                 ) -> Iterator[Callable[[int], None]]:
    """Show a progress bar on stderr; yields ``advance(n)``.

    Disabled (a no-op) when ``enabled`` is false; on a non-terminal stderr rich prints
    the bar's final state only, so logs stay readable.
    """
    if not enabled:
        yield lambda n=1: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        disable=not sys.stderr.isatty() and total is not None and total < 1000,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
