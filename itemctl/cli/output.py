"""Renderers for ``-o table|json|ndjson|csv|id``, and the stdout/stderr split.

Records arrive as JSON-ready dicts (``Model.model_dump(mode="json")``). Data goes to
stdout; everything for people goes to stderr.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from enum import Enum
from functools import cache
from typing import Annotated, Optional

import typer


class ClosedStream:
    """Stands in for a standard stream the caller closed (``<&-``, ``>&-``).

    Reading or writing it is a usage error (exit 2) saying so; asking whether it is a
    terminal, flushing or closing it is harmless.
    """

    closed = True

    def __init__(self, name: str) -> None:
        self.name = name

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, attribute: str):
        from itemctl.core.errors import UsageError

        raise UsageError(
            f"standard {self.name} is closed, and this command needs it",
            hint=f"run it with standard {self.name} open",
        )


class OutputFormat(str, Enum):
    table = "table"
    wide = "wide"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"
    id = "id"


OutputOption = Annotated[
    Optional[OutputFormat],
    typer.Option(
        "--output",
        "-o",
        help="table, wide (every column, full ids), json, ndjson, csv or id. Default: table on a terminal, tab-separated otherwise.",
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
    # One record per line whatever the text holds, in PostgreSQL's COPY text format
    # (which reads every escape back), so no control character reaches a terminal.
    from itemctl.core.text import copy_text

    return copy_text(_cell(value, list_separator=","))


def emit(
    records: Iterable[dict] | dict,
    fmt: OutputFormat | None,
    *,
    columns: Sequence[str],
    id_field: str = "id",
    csv_columns: Sequence[str] | None = None,
    table_columns: Sequence[str] | None = None,
) -> None:
    """Print one record (a dict) or a list of records in the chosen format, through the
    output gate (``itemctl.core.sink``): escaped on a terminal, exact elsewhere.

    ``columns`` are every column (tab-separated output, ``-o wide``); ``table_columns``
    the ones a table shows by default, to fit an 80-column terminal.
    """
    import io

    from itemctl.core import sink as sinks
    from itemctl.core.csvio import csv_writer

    single = isinstance(records, dict)
    rows = [records] if single else records
    out = sinks.stdout(json=fmt in (OutputFormat.json, OutputFormat.ndjson))
    if fmt is None:
        fmt = OutputFormat.table if out.terminal else None
    if fmt is OutputFormat.json:
        out.write(sinks.to_json(records if single else list(rows)) + "\n")
    elif fmt is OutputFormat.ndjson:
        for row in rows:
            out.write(sinks.to_json(row) + "\n")
    elif fmt is OutputFormat.id:
        for row in rows:
            out.write(f"{row[id_field]}\n")
    elif fmt is OutputFormat.csv:
        csv_columns = csv_columns or columns
        buffer = io.StringIO()
        writer = csv_writer(buffer)
        writer.writerow(csv_columns)
        for row in rows:
            writer.writerow([_cell(row.get(c), list_separator=";") for c in csv_columns])
            if buffer.tell() > 1 << 16:
                out.write(buffer.getvalue())
                buffer.seek(0)
                buffer.truncate()
        out.write(buffer.getvalue())
    elif fmt is OutputFormat.table:
        _table(out, list(rows), table_columns or columns, brief=True)
    elif fmt is OutputFormat.wide:
        _table(out, list(rows), columns, brief=False)
    else:
        out.write("\t".join(columns) + "\n")
        for row in rows:
            out.write("\t".join(_tsv_cell(row.get(c)) for c in columns) + "\n")
    out.flush()


def relative_time(iso: str, now: datetime | None = None, *, brief: bool = False) -> str:
    """``2026-11-26T06:22:40Z (3 min ago)``, or just ``3 min ago`` when ``brief``: for
    people, in tables only."""
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
    return when if brief else f"{moment.strftime('%Y-%m-%dT%H:%M:%SZ')} ({when})"


SHORT_ID = 8


def short_ids(ids: Sequence[str]) -> dict[str, str]:
    """Each id's first 8 hex digits, or more where 8 do not tell the page's ids apart.

    Every command accepts such a prefix back (at least 8 hex digits).
    """
    digits = {i: i.replace("-", "") for i in ids}
    length = SHORT_ID
    while length < 32 and len({d[:length] for d in digits.values()}) < len(set(digits.values())):
        length += 1
    return {i: d[:length] for i, d in digits.items()}


# Narrowest useful widths at 80 columns; the rest of the width goes to text columns.
_MIN_WIDTH = {"title": 20, "name": 12, "username": 10, "action": 14, "tags": 8, "details": 16}


def _table(out, rows: list[dict], columns: Sequence[str], *, brief: bool) -> None:
    """A Rich table that fits the terminal, or, when its columns cannot fit the width,
    the expanded view (psql's ``\\x auto``): nothing is ever cropped.

    Every value goes in as a ``Text`` (never markup) with its control characters shown
    escaped: data is never an instruction to the terminal."""
    from rich.table import Table
    from rich.text import Text

    from itemctl.core.text import escape_controls

    shortened = short_ids([r["id"] for r in rows if r.get("id")]) if brief and "id" in columns else {}
    timestamps = {c for c in columns if c == "at" or c.endswith("_at")}
    shown = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if column == "id" and value in shortened:
                text = shortened[value]
            elif column in timestamps and value:
                text = relative_time(value, brief=brief)
            else:
                text = _cell(value, list_separator=", ")
            cells.append(escape_controls(text, keep_newlines=True))
        shown.append(cells)

    console = stdout_console()
    wrapping = [column not in _NO_WRAP and column not in timestamps for column in columns]
    widths = _fit(columns, shown, wrapping, console.width)
    if widths is None:
        _expanded(out, columns, shown)
        return
    table = Table(show_lines=False, header_style="bold")
    for column, width, wraps in zip(columns, widths, wrapping):
        table.add_column(column, overflow="fold", no_wrap=not wraps, width=width)
    for cells in shown:
        table.add_row(*(Text(cell) for cell in cells))
    with console.capture() as captured:
        console.print(table)
    out.write_styled(captured.get())


# Columns whose values are never wrapped (short ids, names, flags, counts, times).
_NO_WRAP = {"id", "owner", "username", "is_admin", "item_count", "db_role", "name"}


def _fit(columns: Sequence[str], shown: list[list[str]], wrapping: list[bool], width: int) -> list[int] | None:
    """Each column's width in a table ``width`` cells wide (borders and padding
    included), or None when even the narrowest layout does not fit.

    A column is as wide as its longest line; text columns give way first, down to their
    minimum, and fold what no longer fits onto more lines (nothing is cut).
    """
    from rich.cells import cell_len

    natural = []
    least = []
    for index, column in enumerate(columns):
        longest = max((cell_len(line) for cells in shown for line in cells[index].split("\n")), default=0)
        natural.append(max(cell_len(column), longest))
        floor = max(cell_len(column), _MIN_WIDTH.get(column, 0))
        least.append(min(natural[-1], floor) if wrapping[index] else natural[-1])
    room = width - (3 * len(columns) + 1)
    if sum(least) > room:
        return None
    widths = list(natural)
    excess = sum(widths) - room
    while excess > 0:
        # Take one cell at a time from the text column with the most to give.
        index = max(range(len(columns)), key=lambda i: widths[i] - least[i])
        widths[index] -= 1
        excess -= 1
    return widths


def _expanded(out, columns: Sequence[str], shown: list[list[str]]) -> None:
    """One ``field: value`` line per column, records separated by a blank line; values
    are already escaped, and a newline in one is shown as ``\\n``."""
    width = max(len(c) for c in columns)
    for number, cells in enumerate(shown):
        lines = [f"-[ record {number + 1} ]-"] if len(shown) > 1 else []
        lines += [f"{column.ljust(width)}: {cell.replace(chr(10), chr(92) + 'n')}" for column, cell in zip(columns, cells)]
        out.write(("\n" if number else "") + "\n".join(lines) + "\n")


def _console(**kwargs):
    """A Rich console; with NO_COLOR no escape sequence at all, not even bold (Rich's own
    NO_COLOR handling drops colours only)."""
    import os

    from rich.console import Console

    if os.environ.get("NO_COLOR"):
        kwargs["color_system"] = None
    return Console(**kwargs)


def stdout_console():
    """Rich console for tables on stdout."""
    return _console()


@cache
def stderr_console():
    """Rich console for prompts and progress on stderr."""
    return _console(stderr=True)


def echo_data(text: str, *, json: bool = False) -> None:
    """A bare value for scripts (a count, a revision, a line of history) on stdout,
    through the output gate; ``json``: the text is JSON."""
    from itemctl.core import sink

    out = sink.stdout(json=json)
    out.write(f"{text}\n")
    out.flush()
