"""``--verbose`` and ``--quiet``: what goes to stderr besides data and errors."""

from __future__ import annotations

import sys
import time

from itemctl.core.errors import redact
from itemctl.core.text import escape_controls

_verbosity = 0  # -1 quiet, 0 normal, 1 verbose


def set_verbosity(level: int) -> None:
    global _verbosity
    _verbosity = level


def is_verbose() -> bool:
    return _verbosity > 0


def is_quiet() -> bool:
    return _verbosity < 0


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
