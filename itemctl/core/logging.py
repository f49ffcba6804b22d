"""``--verbose`` and ``--quiet``: what goes to stderr besides data and errors."""

from __future__ import annotations

import sys
import time

from itemctl.core.invocation import current, redact
from itemctl.core.text import escape_controls


def is_verbose() -> bool:
    return current().verbosity > 0


def is_quiet() -> bool:
    return current().verbosity < 0


def say(message: str) -> None:
    """Print to stderr for people: passwords masked, control characters shown escaped.

    The one way text reaches stderr (notices, debug lines, errors).
    """
    print(escape_controls(redact(message), keep_newlines=True), file=sys.stderr, flush=True)


def notice(message: str) -> None:
    """A status line for people (never for scripts); silenced by ``--quiet``."""
    if not is_quiet():
        say(message)


def debug(message: str) -> None:
    if is_verbose():
        say(message)


def log_statements(engine) -> None:
    """Log every SQL statement with its duration to stderr, never its parameters."""
    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("itemctl_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _end(conn, cursor, statement, parameters, context, executemany):
        started = conn.info["itemctl_started"].pop()
        elapsed = (time.perf_counter() - started) * 1000
        one_line = " ".join(statement.split())
        debug(f"sql: {one_line} [{elapsed:.1f} ms]")


def format_traceback(error: BaseException) -> str:
    """The traceback for --verbose: every frame, but each exception told by its driver's
    first line only, so no SQL text or bound parameter is ever printed."""
    import traceback

    from itemctl.core.errors import primary_message

    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        chain.append(current)
        seen.add(id(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts = []
    for exception in reversed(chain):
        frames = "".join(traceback.format_tb(exception.__traceback__))
        parts.append(
            "Traceback (most recent call last):\n" + frames
            + f"{type(exception).__module__}.{type(exception).__qualname__}: {escape_controls(primary_message(exception))}\n"
        )
    return redact("\nThe above exception led to the following one:\n\n".join(parts))
