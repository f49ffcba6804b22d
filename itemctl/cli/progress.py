"""The progress bar of import, export, dump and restore: Rich on stderr, only when stderr
is a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from itemctl.core.invocation import current
from itemctl.core.logging import is_quiet

# While a bar is drawn (``Invocation.drawing``), Ctrl-C, which ends the process at once
# (``cli.main``), first clears the bar's line and shows the cursor again.
RESTORE_TERMINAL = "\r\x1b[2K\x1b[?25h"


@contextmanager
def import_progress(
    *, enabled: bool, stream: IO[bytes] | None, total_bytes: int | None, title: str = "importing"
) -> Iterator[tuple[Callable[[int], None] | None, Callable[[str], None] | None]]:
    """Yield callbacks (rows read so far; phase name), or Nones when nothing is drawn.

    For a file, the bar shows the share of its bytes read; for stdin only rows and rows/s.
    Once everything is read, it names the phase the database is in (checking, writing).
    """
    if not enabled or is_quiet() or not sys.stderr.isatty():
        yield None, None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from itemctl.cli.output import stderr_console

    label = TextColumn("{task.description}")
    columns = [label, BarColumn(), TaskProgressColumn()] if total_bytes else [label]
    columns += [TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"), TimeElapsedColumn()]
    # Never capture stdout or stderr into the display: data on stdout (`db dump > file`
    # typed at a terminal) must reach its file, byte for byte.
    progress = Progress(
        *columns, console=stderr_console(), transient=True, redirect_stdout=False, redirect_stderr=False
    )
    invocation = current()
    with progress:
        invocation.drawing = True
        try:
            task = progress.add_task(title, total=total_bytes, rows=0, rate=0.0)

            def update(rows: int) -> None:
                elapsed = progress.tasks[0].elapsed or 0
                position = stream.tell() if total_bytes and stream is not None and not stream.closed else None
                progress.update(task, completed=position, rows=rows, rate=rows / elapsed if elapsed else 0.0)

            def phase(name: str) -> None:
                progress.update(task, description=name)

            yield update, phase
        finally:
            invocation.drawing = False
