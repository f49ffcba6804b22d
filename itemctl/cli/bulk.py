"""``itemctl items import`` and ``itemctl items export``: the batch commands.

They belong to the ``items`` group (``cli/items.py`` registers them on its app), and
live here beside each other because they share formats, files and the bulk service.
"""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

from enum import Enum
from typing import Annotated, Optional

import typer

from itemctl.cli.filters import (
    AfterFilter,
    BeforeFilter,
    MineFilter,
    OwnerFilter,
    SearchFilter,
    TagFilter,
    item_filters,
)
from itemctl.cli import wording
from itemctl.cli.inputs import open_input
from itemctl.cli.output import OutputOption, emit
from itemctl.cli.runtime import command_session
from itemctl.core.logging import debug, notice


class ImportFormat(str, Enum):
    csv = "csv"
    jsonl = "jsonl"
    json = "json"


class ImportMode(str, Enum):
    insert = "insert"
    upsert = "upsert"
    skip = "skip"
    sync = "sync"


class ExportFormat(str, Enum):
    csv = "csv"
    jsonl = "jsonl"


def import_command(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE|-", help="CSV, JSON lines or a JSON array; - for stdin.")],
    fmt: Annotated[
        Optional[ImportFormat], typer.Option("--format", help="Default: from the file extension (csv for stdin).")
    ] = None,
    owner: Annotated[
        Optional[str], typer.Option("--owner", metavar="USERNAME", help="Owner of rows that name none (default: you).")
    ] = None,
    mode: Annotated[
        ImportMode,
        typer.Option(
            "--mode",
            help="insert: existing items conflict; upsert: replace description and tags; skip: leave them; "
            "sync (with --owner): make that owner's items equal to the file, deleting those it lacks.",
        ),
    ] = ImportMode.insert,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="sync: an input with no rows deletes every item of the owner (refused otherwise).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate everything against the database, write nothing.")] = False,
    rejects: Annotated[
        Optional[str], typer.Option("--rejects", metavar="PATH", help="Set invalid rows aside in PATH (JSON lines) and import the rest.")
    ] = None,
    exclusive: Annotated[
        bool, typer.Option("--exclusive", help="Lock item and item_tag; re-create their indexes and foreign keys once, after the load (maintenance windows).")
    ] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    delimiter: Annotated[
        str, typer.Option("--delimiter", metavar="CHAR", help="CSV field separator, e.g. ';' or $'\\t'.")
    ] = ",",
    encoding: Annotated[
        str, typer.Option("--encoding", metavar="NAME", help="Text encoding, e.g. cp1252, latin-1, utf-16 (UTF-8 with or without BOM by default).")
    ] = "utf-8",
    output: OutputOption = None,
) -> None:
    """Import items from a file in one transaction: all rows, or none.

    Fields: title (required), description, owner, tags (a list, or names joined by ;).

    \b
    Example: itemctl items import items.csv --mode skip --rejects rejected.jsonl
    Example: itemctl --as root items import nightly.csv --mode sync --owner team-a --dry-run
    """
    from contextlib import ExitStack

    from itemctl.cli.progress import import_progress
    from itemctl.core.files import STDOUT, check_output_path
    from itemctl.services import bulk

    _check_mode(mode, owner=owner, allow_empty=allow_empty)
    chosen = _input_format(fmt, file)
    reads = {file: "the input file itself", **ctx.obj.config().database.files()}
    if output is not None:
        reads[STDOUT] = "standard output, where the summary goes"
    if rejects is not None:
        # Before anything is read or locked: an unusable path imports nothing.
        check_output_path(rejects, option="--rejects", reads=reads)
    raw, size = open_input(file)
    with ExitStack() as stack:
        if file != "-":
            stack.callback(raw.close)
        stream = bulk.decompressed(raw, file)
        rejects_out, finish_rejects = (
            _open_rejects(stack, rejects, dry_run=dry_run, reads=reads) if rejects is not None else (None, None)
        )
        # ExitStack unwinds in reverse: the session commits before the rejects file is
        # renamed into place (or handed to a FIFO), so a failed commit leaves none either.
        on_progress, on_phase = stack.enter_context(
            import_progress(enabled=not no_progress, stream=raw, total_bytes=size)
        )
        session, actor = stack.enter_context(command_session(ctx.obj, rollback=dry_run, stage_first=True))
        summary = bulk.import_items(
            session=session,
            actor=actor,
            stream=stream,
            options=bulk.ImportOptions(
                fmt=chosen,
                encoding=encoding,
                delimiter=delimiter,
                source="stdin" if file == "-" else file,
                mode=mode.value,
                allow_empty=allow_empty,
                list_deleted=dry_run,
                owner=owner,
                exclusive=exclusive,
                rejects=bulk.Rejects(rejects_out) if rejects_out else None,
                on_progress=on_progress,
                on_phase=on_phase,
                on_notice=wording.notice,
            ),
        )
        if finish_rejects:
            finish_rejects()  # a full disk is found here, and the import rolls back
    _report_import(summary, dry_run=dry_run, output=output)


def _check_mode(mode: ImportMode, *, owner: Optional[str], allow_empty: bool) -> None:
    """The options that go with --mode sync, before anything is read."""
    from itemctl.core.errors import UsageError

    if mode is ImportMode.sync and owner is None:
        raise UsageError(
            "--mode sync needs --owner: it makes that one owner's items equal to the input",
            hint="itemctl items import FILE --mode sync --owner USERNAME",
        )
    if allow_empty and mode is not ImportMode.sync:
        raise UsageError("--allow-empty applies to --mode sync only")


def _input_format(fmt: Optional[ImportFormat], file: str) -> str:
    """--format, else the file's extension; stdin is CSV unless told."""
    from itemctl.core.errors import InvalidInput
    from itemctl.services import bulk

    chosen = fmt.value if fmt else ("csv" if file == "-" else bulk.format_from_name(file))
    if chosen is None:
        raise InvalidInput(f"cannot tell the format of {file!r} from its name", hint="give --format csv|jsonl|json")
    return chosen


def _open_rejects(stack, rejects: str, *, dry_run: bool, reads: dict[str, str]):
    """The --rejects file as JSON lines of text, and what writes it out to the disk before
    the commit; it is put in place only when the import commits. A dry run writes nothing,
    the rejects file included: it is counted only."""
    import os

    from itemctl.core import sink
    from itemctl.core.files import atomic_output

    if dry_run:
        return stack.enter_context(open(os.devnull, "w", encoding="utf-8")), None  # noqa: SIM115 - closed by the stack
    out = stack.enter_context(atomic_output(rejects, option="--rejects", reads=reads, json=True))
    text = stack.enter_context(sink.text_lines(out))

    def finish() -> None:
        text.flush()
        out.finish()

    return text, finish


def _report_import(summary, *, dry_run: bool, output) -> None:
    """The phase timings (-v), what a dry run would delete, then the summary: one line for
    people, or one object with -o."""
    counts = summary.counts()
    debug("import timings: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in summary.timings.items()))
    if dry_run and summary.deleted:
        for title in summary.deleted_titles:
            notice(f"would delete: {title}")
    if output is not None:  # the summary as data: -o json prints one object
        as_data = {**counts, "dry_run": True} if dry_run else counts
        if dry_run and summary.deleted is not None:
            as_data["would_delete"] = summary.deleted_titles
        emit(as_data, output, columns=tuple(as_data), id_field="read")
        return
    verb = "would import" if dry_run else "imported"
    notice(
        f"{verb}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" ({summary.seconds:.2f} s{', dry run: nothing written' if dry_run else ''})"
    )


def _export_format(file: str | None) -> str:
    """The format a --file name asks for: .jsonl/.ndjson are JSON lines; anything else CSV."""
    from itemctl.services import bulk

    return "jsonl" if file and bulk.format_from_name(file) == "jsonl" else "csv"


def export_command(
    ctx: typer.Context,
    owner: OwnerFilter = None,
    mine: MineFilter = False,
    tag: TagFilter = None,
    search: SearchFilter = None,
    created_after: AfterFilter = None,
    created_before: BeforeFilter = None,
    fmt: Annotated[
        Optional[ExportFormat],
        typer.Option("--format", help="csv or jsonl [default: from the --file extension (.csv, .jsonl, .ndjson), else csv]."),
    ] = None,
    file: Annotated[
        Optional[str], typer.Option("--file", metavar="PATH", help="Write here (atomically) instead of stdout; a name ending in .gz is compressed.")
    ] = None,
) -> None:
    """Export items, oldest first, in a format `items import` reads back.

    Example: itemctl items export --owner alice --file alice.jsonl
    """
    from contextlib import ExitStack

    from itemctl.core import sink
    from itemctl.core.files import atomic_output
    from itemctl.services import bulk

    filters = item_filters(owner, mine, tag, search, created_after, created_before)
    chosen = fmt.value if fmt else _export_format(file)
    with ExitStack() as stack:
        if file is None:
            out = sink.stdout(json=chosen == "jsonl")
        else:
            # Contexts exit in reverse: the transaction ends before the file is renamed.
            out = stack.enter_context(
                atomic_output(file, option="--file", reads=ctx.obj.config().database.files(), json=chosen == "jsonl")
            )
        session, actor = stack.enter_context(command_session(ctx.obj, writes=False))
        count = bulk.export_items(session=session, actor=actor, filters=filters, out=out, fmt=chosen)
        out.flush()
    notice(f"exported {count} item(s)" + (f" to {file}" if file else ""))
