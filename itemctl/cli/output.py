"""Renderers for ``-o table|json|ndjson|csv|id``, and the stdout/stderr split.

Records arrive as JSON-ready dicts (``Model.model_dump(mode="json")``). Data goes to
stdout; everything for people goes to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from enum import Enum
from functools import cache
from typing import Annotated, Optional

import typer


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"
    id = "id"


OutputOption = Annotated[
    Optional[OutputFormat],
    typer.Option(
        "--output",
        "-o",
        help="table, json, ndjson, csv or id. Default: table on a terminal, tab-separated otherwise.",
        show_default=False,
    ),
]


def _cell(value, *, list_separator: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return list_separator.join(str(v) for v in value)
    if isinstance(value, dict):
        import json

        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _tsv_cell(value) -> str:
    # One record per line whatever the text holds: escape like PostgreSQL's COPY text format.
    text = _cell(value, list_separator=",")
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def emit(
    records: Iterable[dict] | dict,
    fmt: OutputFormat | None,
    *,
    columns: Sequence[str],
    id_field: str = "id",
    csv_columns: Sequence[str] | None = None,
) -> None:
    """Print one record (a dict) or a list of records in the chosen format."""
    import csv  # here, not at the top: --help and --version never need them
    import json

    single = isinstance(records, dict)
    rows = [records] if single else records
    out = sys.stdout
    if fmt is None:
        fmt = OutputFormat.table if out.isatty() else None
    if fmt is OutputFormat.json:
        if single:
            out.write(json.dumps(records, ensure_ascii=False) + "\n")
        else:
            out.write(json.dumps(list(rows), ensure_ascii=False) + "\n")
    elif fmt is OutputFormat.ndjson:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt is OutputFormat.id:
        for row in rows:
            out.write(f"{row[id_field]}\n")
    elif fmt is OutputFormat.csv:
        writer = csv.writer(out)  # CRLF, as RFC 4180: so a lone \r in a value is quoted too
        csv_columns = csv_columns or columns
        writer.writerow(csv_columns)
        for row in rows:
            writer.writerow([_cell(row.get(c), list_separator=";") for c in csv_columns])
    elif fmt is OutputFormat.table:
        _table(list(rows), columns)
    else:
        out.write("\t".join(columns) + "\n")
        for row in rows:
            out.write("\t".join(_tsv_cell(row.get(c)) for c in columns) + "\n")
    out.flush()


def relative_time(iso: str, now: datetime | None = None) -> str:
    """``2026-11-26T06:22:40Z (3 min ago)``: for people, in tables only."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    seconds = ((now or datetime.now(timezone.utc)) - moment).total_seconds()
    for size, unit in ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "min")):
        if abs(seconds) >= size:
            amount = f"{int(abs(seconds) // size)} {unit}"
            break
    else:
        amount = f"{int(abs(seconds))} s"
    when = f"{amount} ago" if seconds >= 0 else f"in {amount}"
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%SZ')} ({when})"


def _table(rows: list[dict], columns: Sequence[str]) -> None:
    """A Rich table that fits the terminal: long text wraps, ids never break."""
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column == "id")
    timestamps = {c for c in columns if c == "at" or c.endswith("_at")}
    for row in rows:
        table.add_row(
            *(
                relative_time(row[c]) if c in timestamps and row.get(c) else _cell(row.get(c), list_separator=", ")
                for c in columns
            )
        )
    stdout_console().print(table)


@cache
def stdout_console():
    """Rich console for tables on stdout (Rich itself honours NO_COLOR)."""
    from rich.console import Console

    return Console()


@cache
def stderr_console():
    """Rich console for prompts and progress on stderr."""
    from rich.console import Console

    return Console(stderr=True)


def echo_data(text: str) -> None:
    """A bare value for scripts (a count, a revision) on stdout."""
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def must_ask(*, yes: bool, what: str) -> bool:
    """Whether to ask before a destructive change. Call it before touching the database.

    With ``--yes``: no. On a terminal: yes. Otherwise the change is refused (exit 2), so a
    script that forgot ``--yes`` changes nothing.
    """
    from itemctl.core.errors import UsageError

    if yes:
        return False
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to {what} without --yes: stdin is not a terminal; nothing changed")
    return True


def confirm(question: str) -> None:
    """Ask on the terminal; anything but yes changes nothing (exit 2)."""
    from itemctl.core.errors import UsageError

    if not typer.confirm(question, default=False, err=True):
        raise UsageError("not confirmed; nothing changed")
