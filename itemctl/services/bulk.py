"""Batch import and export of items.

Import streams: records are parsed and validated one at a time and copied into a
temporary staging table (PostgreSQL: ``COPY``; SQLite: batched inserts). Everything that
needs the whole input or the database — duplicates within the input, unknown owners,
conflicts with existing items — is then checked set-based on the server, and the rows
are written with a handful of ``INSERT … SELECT`` statements. Nothing the size of the
input is ever held on the client, and everything happens in the command's one
transaction: any error rolls back all of it.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import IO, Literal

from pydantic import ValidationError
from sqlalchemy import Connection, text
from sqlmodel import Session, select

from itemctl.core.csvio import csv_writer
from itemctl.core.errors import ConflictError, InvalidInput, PermissionDenied
from itemctl.core.text import fold_case
from itemctl.models import Item, ItemImportRow, ItemTag, Tag, User
from itemctl.models.item import IMPORT_FIELDS
from itemctl.models.base import new_id, utcnow
from itemctl.services import audit
from itemctl.services.common import describe_validation_error
from itemctl.services.tags import ensure_tags, tag_order

Format = Literal["csv", "jsonl", "json"]
Mode = Literal["insert", "upsert", "skip"]
FIELDS = IMPORT_FIELDS
# Fields itemctl itself prints (`items list -o ndjson`), accepted and ignored on the way in.
IGNORED = ("id", "created_at", "updated_at")
MAX_REPORTED = 20
BATCH = 1000


# -- reading: one record at a time, with the line it starts on -------------------------------


@dataclass
class Record:
    line: int  # the physical line the record starts on (the header is line 1 of a CSV)
    row: int  # its position among the records, from 1
    data: object


def format_from_name(name: str) -> Format | None:
    """The format a file's name says (``.csv``, ``.jsonl``/``.ndjson``, ``.json``, each
    also with ``.gz``), or None."""
    lowered = name.lower().removesuffix(".gz")
    for suffix, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json")):
        if lowered.endswith(suffix):
            return fmt  # type: ignore[return-value]
    return None


def decompressed(stream: IO[bytes], name: str) -> IO[bytes]:
    """A ``.gz`` file read through gzip, on the fly; anything else as it is."""
    if name.lower().endswith(".gz"):
        import gzip

        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


ENCODING_HINT = "give --encoding (for example cp1252, latin-1 or utf-16)"


def _line_by_line(encoding: str) -> bool:
    """Encodings in which a newline is the byte 0x0a (UTF-8, the cp and latin ones): those
    are decoded a line at a time, so an undecodable byte is named by line and offset."""
    import codecs

    try:
        return codecs.lookup(encoding).encode("\n")[0] == b"\n"
    except LookupError:
        raise InvalidInput(f"unknown encoding {encoding!r}", hint=ENCODING_HINT) from None


class _DecodedLines:
    """Text lines of a binary stream, decoded one by one: a byte that is not valid in the
    encoding is reported with its line and its offset in the file."""

    def __init__(self, stream: IO[bytes], encoding: str) -> None:
        self.stream = stream
        self.encoding = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        self.offset = 0
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        import codecs

        decoder = codecs.getincrementaldecoder(self.encoding)()  # drops a leading BOM once
        for raw in self.stream:
            self.number += 1
            try:
                yield decoder.decode(raw)
            except UnicodeDecodeError as error:
                raise InvalidInput(
                    f"line {self.number}: byte {self.offset + error.start + 1} of the file is not valid "
                    f"{self.encoding.removesuffix('-sig')} ({error.reason})",
                    hint=ENCODING_HINT,
                ) from None
            self.offset += len(raw)


def read_records(stream: IO[bytes], fmt: Format, *, encoding: str = "utf-8", delimiter: str = ",") -> Iterator[Record]:
    """Parse the input lazily; a malformed file raises InvalidInput naming the line."""
    if fmt == "csv":
        reader = lambda text: _read_csv(text, delimiter)  # noqa: E731
    else:
        reader = {"jsonl": _read_jsonl, "json": _read_json_array}[fmt]
    if _line_by_line(encoding) and fmt != "json":
        yield from reader(_DecodedLines(stream, encoding))
        return
    # UTF-16 and such (a newline is not one byte), and a JSON array, which may be one
    # line of any length: a wrapper decodes as it reads, in chunks.
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # a byte-order mark is dropped when present
    text_stream = io.TextIOWrapper(stream, encoding=encoding, newline="")
    try:
        yield from reader(text_stream)
    except UnicodeDecodeError as error:
        raise InvalidInput(f"the input is not valid {encoding} ({error.reason})", hint=ENCODING_HINT) from None
    except UnicodeError as error:
        raise InvalidInput(f"the input is not valid {encoding} ({error})", hint=ENCODING_HINT) from None
    finally:
        # The caller owns the stream: let go of it rather than close it with the wrapper.
        text_stream.detach()


def _read_csv(text_stream, delimiter: str = ",") -> Iterator[Record]:
    if len(delimiter) != 1:
        raise InvalidInput(f"--delimiter must be one character, not {delimiter!r}", hint="for a tab: --delimiter $'\\t'")
    reader = csv.reader(text_stream, strict=True, delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return
        header = _header(header, delimiter)
        width = len(header)
        row_number = 0
        last_line = reader.line_num
        for values in reader:
            start, last_line = last_line + 1, reader.line_num
            if not values:
                continue  # a blank line
            row_number += 1
            if len(values) == width + 1 and values[-1] == "" and header.trailing_blank:
                values = values[:-1]  # the spreadsheet's empty trailing column
            if len(values) != width:
                yield Record(start, row_number, _FieldCountError(len(values), width, values))
                continue
            yield Record(start, row_number, {k: v for k, v in zip(header, values) if k not in IGNORED})
    except csv.Error as error:
        raise InvalidInput(f"line {reader.line_num}: malformed CSV: {error}") from None


class _Header(list):
    """The CSV header's field names; ``trailing_blank`` when a spreadsheet added an empty one."""

    trailing_blank = False


def _header(names: list[str], delimiter: str = ",") -> _Header:
    """Field names matched case- and space-insensitively (``Title `` is title); an empty
    last name (a spreadsheet's trailing column) is dropped; a repeat is named. A header
    that is one field holding another delimiter says which option reads it."""
    if len(names) == 1:
        for other, shown in ((";", "';'"), ("\t", "$'\\t'"), (",", "','"), ("|", "'|'")):
            if other != delimiter and other in names[0] and "title" in names[0].lower():
                raise InvalidInput(
                    f"line 1: the header {names[0]!r} looks separated by {other!r}, not {delimiter!r}",
                    hint=f"give --delimiter {shown}",
                )
    header = _Header(name.strip().lower() for name in names)
    if len(header) > 1 and header[-1] == "":
        header.pop()
        header.trailing_blank = True
    known = (*FIELDS, *IGNORED)
    for position, name in enumerate(header, start=1):
        if name not in known:
            raise InvalidInput(
                f"line 1: unknown field {names[position - 1]!r} in the header (column {position}; fields: {', '.join(FIELDS)})"
            )
        if header.count(name) > 1:
            raise InvalidInput(f"line 1: the field {name!r} appears twice in the header")
    if "title" not in header:
        raise InvalidInput("line 1: the header has no 'title' field")
    return header


@dataclass
class _FieldCountError:
    """A CSV row whose field count differs from the header's (invalid, not fatal)."""

    got: int
    expected: int
    values: list[str]


def _read_jsonl(text_stream: IO[str]) -> Iterator[Record]:
    row_number = 0
    for line_number, line in enumerate(text_stream, start=1):
        if not line.strip():
            continue
        row_number += 1
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            data = _JsonError(f"invalid JSON: {error.msg} (column {error.colno})", line.rstrip("\r\n"))
        yield Record(line_number, row_number, data)


@dataclass
class _JsonError:
    reason: str
    source: str


MAX_ELEMENT = 1 << 20  # characters: far more than any valid record of an array holds


def _read_json_array(text_stream: IO[str], chunk_size: int = 1 << 16) -> Iterator[Record]:
    """Elements of a top-level JSON array, decoded one by one from a sliding buffer."""
    decoder = json.JSONDecoder()
    buffer, position, line = "", 0, 1
    eof = False

    def fill() -> bool:
        nonlocal buffer, position, eof
        chunk = text_stream.read(chunk_size)
        if not chunk:
            eof = True
            return False
        buffer = buffer[position:] + chunk
        position = 0
        return True

    def skip_space() -> None:
        nonlocal position, line
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n":
                if buffer[position] == "\n":
                    line += 1
                position += 1
            if position < len(buffer) or not fill():
                return

    skip_space()
    if position >= len(buffer):
        return
    if buffer[position] != "[":
        raise InvalidInput(f"line {line}: a JSON file must hold an array of objects")
    position += 1
    row_number = 0
    while True:
        skip_space()
        if position >= len(buffer):
            raise InvalidInput(f"line {line}: the JSON array is not closed")
        if buffer[position] == "]":
            position += 1
            skip_space()
            if position < len(buffer):
                raise InvalidInput(f"line {line}: unexpected text after the JSON array")
            return
        if row_number and buffer[position] == ",":
            position += 1
            skip_space()
        elif row_number:
            raise InvalidInput(f"line {line}: expected ',' or ']' in the JSON array")
        while True:
            try:
                data, end = decoder.raw_decode(buffer, position)
                if end == len(buffer) and not eof and fill():
                    continue  # a number or literal may go on in the next chunk
                break
            except json.JSONDecodeError as error:
                # More input can complete an element cut by the chunk's end, but no valid
                # record is near a megabyte: past that, the element is malformed, and
                # reading on would pull the rest of the file into memory.
                if not eof and len(buffer) - position < MAX_ELEMENT and fill():
                    continue
                where = line + buffer.count(chr(10), position, error.pos)
                raise InvalidInput(
                    f"line {where}: element {row_number + 1} of the JSON array is not valid JSON: {error.msg}"
                ) from None
        row_number += 1
        yield Record(line, row_number, data)
        line += buffer.count("\n", position, end)
        position = end


# -- validation ---------------------------------------------------------------------------------


@dataclass
class ValidRow:
    line: int
    row: int
    title: str
    description: str | None
    owner: str
    tags: list[str]
    source: object
    # A field the record does not have at all (a column missing from the file, a key
    # absent from the object) leaves the stored value alone in an upsert.
    keep_description: bool = False
    keep_tags: bool = False


def _problem(data) -> str | None:
    if isinstance(data, _FieldCountError):
        return f"has {data.got} fields, the header has {data.expected}"
    if isinstance(data, _JsonError):
        return data.reason
    if not isinstance(data, dict):
        return "a record must be a JSON object"
    return None


def _describe(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        name = ".".join(str(p) for p in problem["loc"]) or "record"
        if problem["type"] == "extra_forbidden":
            parts.append(f"{name}: unknown field (fields: {', '.join(FIELDS)})")
        elif problem["type"] == "missing":
            parts.append(f"{name}: required")
        else:
            parts.append(describe_validation_error(ValidationError.from_exception_data(error.title, [problem])))
    return "; ".join(parts)


def validate(record: Record, default_owner: str) -> ValidRow | str:
    """The record as a row to load, or the reason it is invalid."""
    problem = _problem(record.data)
    if problem:
        return problem
    data = record.data
    if any(name in data for name in IGNORED):
        data = {k: v for k, v in data.items() if k not in IGNORED}
    try:
        row = ItemImportRow.model_validate(data)
    except ValidationError as error:
        return _describe(error)
    return ValidRow(
        record.line, record.row, row.title, row.description, row.owner or default_owner, row.tags, record.data,
        keep_description="description" not in data, keep_tags="tags" not in data,
    )


def _source(data) -> object:
    if isinstance(data, _FieldCountError):
        return data.values
    if isinstance(data, _JsonError):
        return data.source
    return data


# -- the import -----------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("read", "inserted", "updated", "skipped", "rejected")}


@dataclass
class _Problems:
    """The first errors, in full, and how many there were."""

    total: int = 0
    first: list[tuple[int, int, str]] = field(default_factory=list)

    def add(self, line: int, row: int, message: str) -> None:
        self.total += 1
        self.first.append((line, row, message))
        self.first.sort()
        del self.first[MAX_REPORTED:]

    def report(self, what: str) -> str:
        lines = [f"{where(line, row)}: {message}" for line, row, message in self.first]
        more = self.total - len(self.first)
        tail = f"; and {more} more" if more > 0 else ""
        return f"{self.total} {what} row(s), nothing was imported: " + "; ".join(lines) + tail


def where(line: int, row: int) -> str:
    """``line 2501 (row 2500)``: the line in the file, and the record's number when it differs."""
    return f"line {line}" if line == row else f"line {line} (row {row})"


class Rejects:
    """Where ``--rejects`` sets invalid rows aside: one JSON object per line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.count = 0

    def write(self, line: int, row: int, reason: str, record: object) -> None:
        self.stream.write(json.dumps({"line": line, "row": row, "reason": reason, "record": record}, ensure_ascii=False) + "\n")
        self.count += 1


@dataclass
class ImportOptions:
    fmt: Format
    encoding: str = "utf-8"
    delimiter: str = ","
    source: str | None = None  # the file name, for the audit trail
    mode: Mode = "insert"
    owner: str | None = None
    exclusive: bool = False
    rejects: Rejects | None = None
    on_progress: Callable[[int], None] | None = None  # called with the rows read so far
    on_phase: Callable[[str], None] | None = None  # "checking", then "writing"
    on_notice: Callable[[str], None] | None = None


def import_items(*, session: Session, actor: User, stream: IO[bytes], options: ImportOptions) -> ImportSummary:
    """Import items from ``stream``: all of it, or (on any error) nothing."""
    started = time.perf_counter()
    default_owner = options.owner or actor.username
    if default_owner != actor.username and not actor.is_admin:
        raise PermissionDenied(
            f"only an admin may import items for another user (you are {actor.username!r}, not an admin)"
        )
    connection = session.connection()
    loader: _Loader = (_PostgresLoader if connection.dialect.name == "postgresql" else _SqliteLoader)(
        session, connection, options
    )
    summary = ImportSummary()
    invalid = _Problems()
    # A savepoint: a failed import leaves the session as it found it. (Asking for the
    # connection emits the SAVEPOINT now; the work below bypasses the ORM.)
    with session.begin_nested():
        session.connection()
        with loader.loading():
            for record in read_records(stream, options.fmt, encoding=options.encoding, delimiter=options.delimiter):
                summary.read += 1
                if options.on_progress and summary.read % BATCH == 0:
                    options.on_progress(summary.read)
                checked = validate(record, default_owner)
                if isinstance(checked, str):
                    if options.rejects:
                        options.rejects.write(record.line, record.row, checked, _source(record.data))
                    else:
                        invalid.add(record.line, record.row, checked)
                    continue
                if checked.owner != actor.username and not actor.is_admin:
                    raise PermissionDenied(
                        f"{where(record.line, record.row)}: only an admin may import items for another user "
                        f"(owner {checked.owner!r}; you are {actor.username!r})"
                    )
                loader.add(checked)
        if options.on_progress:
            options.on_progress(summary.read)
        _check_and_write(loader, options, invalid, summary)
        audit.record(
            session,
            actor=actor,
            action="items.import",
            target=options.source,
            details={**summary.counts(), "mode": options.mode, "exclusive": options.exclusive},
        )
    summary.seconds = time.perf_counter() - started
    return summary


def _check_and_write(loader: _Loader, options: ImportOptions, invalid: _Problems, summary: ImportSummary) -> None:
    """Set-based checks over the staged rows, then the writes."""
    phase = options.on_phase or (lambda name: None)
    phase("checking")
    if options.rejects:
        loader.reject_unknown_owners_and_duplicates()
    else:
        loader.find_unknown_owners(invalid)
        # The unique index on (owner, title) catches repeats among new items as they are
        # written; a repeat of an existing item (skip, upsert) never reaches it.
        if invalid.total or options.mode != "insert" or not loader.unique_index_finds_duplicates:
            loader.find_duplicates(invalid)
        if invalid.total:
            raise InvalidInput(invalid.report("invalid"))
    if options.mode == "insert":
        try:
            loader.check_conflicts()
        except ConflictError:
            # A repeat within the input is invalid, and that comes before any conflict.
            if not options.rejects and loader.unique_index_finds_duplicates:
                loader.find_duplicates(invalid)
            if invalid.total:
                raise InvalidInput(invalid.report("invalid")) from None
            raise
    phase("writing")
    try:
        summary.inserted, summary.updated = loader.write()
    except _RepeatedRows:
        # Two rows of the input with one (owner, title): name them. If none are found,
        # another session inserted the same item meanwhile.
        loader.find_duplicates(invalid)
        if invalid.total:
            raise InvalidInput(invalid.report("invalid")) from None
        raise ConflictError(
            "another session created some of these items while the import ran; nothing was imported",
            hint="run the import again",
        ) from None
    summary.rejected = options.rejects.count if options.rejects else 0
    summary.skipped = summary.read - summary.rejected - summary.inserted - summary.updated


class _RepeatedRows(Exception):
    """The unique index on (owner_id, title) refused the insert of the staged rows."""


# The checks below are the same SQL on both dialects.
UNKNOWN_OWNERS = """
    SELECT s.line, s.rownum, s.owner, count(*) OVER () FROM import_row s
    WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u.username = s.owner)
    ORDER BY s.line LIMIT :limit
"""
DUPLICATES = """
    SELECT d.line, d.rownum, d.first_line, d.first_row, d.owner, d.title, count(*) OVER () FROM (
        SELECT s.line, s.rownum, s.owner, s.title,
               first_value(s.line) OVER w AS first_line, first_value(s.rownum) OVER w AS first_row
        FROM import_row s
        WINDOW w AS (PARTITION BY s.owner, s.title ORDER BY s.rownum)
    ) d
    WHERE d.rownum <> d.first_row
    ORDER BY d.rownum LIMIT :limit
"""
CONFLICTS = """
    SELECT s.line, s.rownum, s.owner, s.title, count(*) OVER () FROM import_row s
    JOIN "user" u ON u.username = s.owner
    JOIN item i ON i.owner_id = u.id AND i.title = s.title
    ORDER BY s.line LIMIT :limit
"""
REJECT_UNKNOWN_OWNERS = """
    DELETE FROM import_row
    WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u.username = import_row.owner)
    RETURNING line, rownum, owner, source
"""
# Records are told apart by their number, not their line: a JSON array may hold many
# records on one line.
REJECT_DUPLICATES = """
    DELETE FROM import_row
    WHERE rownum IN (
        SELECT d.rownum FROM (
            SELECT s.rownum, min(s.rownum) OVER (PARTITION BY s.owner, s.title) AS first_row
            FROM import_row s
        ) d WHERE d.rownum <> d.first_row
    )
    RETURNING line, rownum, owner, title, source
"""


class _Loader:
    """Staging and writing for one dialect; the checks are shared."""

    def __init__(self, session: Session, connection: Connection, options: ImportOptions) -> None:
        self.session = session
        self.connection = connection
        self.options = options

    def _query(self, sql: str, **params):
        return self.connection.execute(text(sql), params).all()

    # Whether write() may rely on the unique index to catch repeated rows (and then raise
    # _RepeatedRows), so that a clean load skips the cost of looking for them.
    unique_index_finds_duplicates = False

    def find_unknown_owners(self, problems: _Problems) -> None:
        rows = self._query(UNKNOWN_OWNERS, limit=MAX_REPORTED)
        for line, row, owner, _total in rows:
            problems.add(line, row, f"owner: unknown user {owner!r}")
        if rows:
            problems.total += rows[0][-1] - len(rows)

    def find_duplicates(self, problems: _Problems) -> None:
        """Add every repeat of an (owner, title) after its first line to ``problems``."""
        rows = self._query(DUPLICATES, limit=MAX_REPORTED)
        for line, row, first_line, first_row, owner, title, _total in rows:
            problems.add(line, row, f"title: {title!r} for owner {owner!r} is also on {where(first_line, first_row)}")
        if rows:
            problems.total += rows[0][-1] - len(rows)

    def reject_unknown_owners_and_duplicates(self) -> None:
        rejects = self.options.rejects
        for line, row, owner, source in self._query(REJECT_UNKNOWN_OWNERS):
            rejects.write(line, row, f"owner: unknown user {owner!r}", json.loads(source))
        for line, row, owner, title, source in self._query(REJECT_DUPLICATES):
            rejects.write(line, row, f"title: {title!r} for owner {owner!r} appears on an earlier line", json.loads(source))

    def check_conflicts(self) -> None:
        rows = self._query(CONFLICTS, limit=MAX_REPORTED)
        if not rows:
            return
        shown = "; ".join(
            f"{where(line, row)}: item {title!r} already exists for {owner}" for line, row, owner, title, _ in rows
        )
        total = rows[0][-1]
        more = total - len(rows)
        raise ConflictError(
            f"{total} row(s) conflict with existing items, nothing was imported: {shown}"
            + (f"; and {more} more" if more > 0 else ""),
            hint="use --mode skip to keep existing items, or --mode upsert to replace their description and tags",
        )

    def _source_json(self, row: ValidRow) -> str | None:
        # The original record is kept only when --rejects may need to write it back.
        return json.dumps(row.source, ensure_ascii=False) if self.options.rejects else None

    # Per dialect: loading() stages the rows given to add(); write() applies them.
    def loading(self) -> AbstractContextManager[None]: ...
    def add(self, row: ValidRow) -> None: ...
    def write(self) -> tuple[int, int]: ...


# skip and upsert stay safe when runs of one input overlap: an item another run inserted
# since this one looked is left to it (the first run's values are the same input's).
OVERLAP_SAFE = "ON CONFLICT ON CONSTRAINT uq_item_owner_id_title DO NOTHING"


class _PostgresLoader(_Loader):
    """COPY into a temporary table, then set-based statements."""

    unique_index_finds_duplicates = True

    STAGING = """
        CREATE TEMP TABLE import_row (
            line integer NOT NULL,
            rownum integer NOT NULL,
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            title text NOT NULL,
            description text,
            owner text NOT NULL,
            tags text,
            source text,
            keep_description boolean NOT NULL,
            keep_tags boolean NOT NULL,
            existing_id uuid,
            changed boolean
        ) ON COMMIT DROP
    """

    @contextmanager
    def loading(self) -> Iterator[None]:
        # The psycopg connection under the session: the same transaction.
        self.cursor = self.connection.connection.driver_connection.cursor()
        if self.options.exclusive:
            self._take_tables()
        self.cursor.execute("DROP TABLE IF EXISTS pg_temp.import_row")
        self.cursor.execute(self.STAGING)
        self.tag_names: set[str] = set()
        columns = "line, rownum, title, description, owner, tags, source, keep_description, keep_tags"
        with self.cursor.copy(f"COPY import_row ({columns}) FROM STDIN") as self.copy:
            yield
        # Statistics, so the checks below join sensibly instead of guessing.
        self.cursor.execute("ANALYZE import_row")

    def add(self, row: ValidRow) -> None:
        self.copy.write_row(
            (
                row.line, row.row, row.title, row.description, row.owner, ";".join(row.tags) or None,
                self._source_json(row), row.keep_description, row.keep_tags,
            )
        )
        # The distinct names seen (bounded by the number of tags, not of rows): when the
        # database knows them all, the pass that creates new tags is skipped.
        self.tag_names.update(row.tags)

    def _exec(self, sql: str) -> int:
        self.cursor.execute(sql)
        return self.cursor.rowcount

    def write(self) -> tuple[int, int]:
        from psycopg.errors import UniqueViolation

        mode = self.options.mode
        updated = 0
        if mode == "upsert":
            self._exec(
                """
                UPDATE import_row s SET existing_id = i.id,
                    changed = (NOT s.keep_description AND i.description IS DISTINCT FROM s.description)
                        OR (NOT s.keep_tags
                            AND coalesce((SELECT string_agg(lower(t.name), ';' ORDER BY lower(t.name))
                                          FROM item_tag it JOIN tag t ON t.id = it.tag_id
                                          WHERE it.item_id = i.id), '')
                            <> coalesce((SELECT string_agg(lower(x), ';' ORDER BY lower(x))
                                         FROM unnest(string_to_array(s.tags, ';')) x), ''))
                FROM "user" u JOIN item i ON i.owner_id = u.id
                WHERE u.username = s.owner AND i.title = s.title
                """
            )
            updated = self._exec(
                """
                UPDATE item SET updated_at = now(),
                    description = CASE WHEN s.keep_description THEN item.description ELSE s.description END
                FROM import_row s WHERE s.changed AND item.id = s.existing_id
                """
            )
            self._exec(
                "DELETE FROM item_tag USING import_row s "
                "WHERE s.changed AND NOT s.keep_tags AND item_tag.item_id = s.existing_id"
            )
            # A new row is written only if it was inserted here: an overlapping run of
            # the same input may have inserted that item first (ON CONFLICT below).
            new_rows = f"WHERE s.existing_id IS NULL {OVERLAP_SAFE}"
            written = (
                "((s.existing_id IS NULL AND EXISTS (SELECT 1 FROM item i WHERE i.id = s.id))"
                " OR (s.changed AND NOT s.keep_tags))"
            )
        elif mode == "skip":
            new_rows = f"WHERE NOT EXISTS (SELECT 1 FROM item i WHERE i.owner_id = u.id AND i.title = s.title) {OVERLAP_SAFE}"
            written = "EXISTS (SELECT 1 FROM item i WHERE i.id = s.id)"
        else:
            new_rows, written = "", "true"
        self.cursor.execute("SAVEPOINT import_items")
        try:
            inserted = self._exec(
                f"""
                INSERT INTO item (id, title, description, owner_id, created_at, updated_at)
                SELECT s.id, s.title, s.description, u.id, now(), now()
                FROM import_row s JOIN "user" u ON u.username = s.owner
                {new_rows}
                """
            )
        except UniqueViolation:
            self.cursor.execute("ROLLBACK TO SAVEPOINT import_items")
            raise _RepeatedRows() from None
        self.cursor.execute("RELEASE SAVEPOINT import_items")
        # New tags only: the names not known yet (in any case) are filtered first, so a
        # load into existing tags sorts nothing; a new name keeps its first spelling.
        if self._any_new_tag():
            self._create_tags(written)
        target = "coalesce(s.existing_id, s.id)" if mode == "upsert" else "s.id"
        try:
            self._exec(
                f"""
                INSERT INTO item_tag (item_id, tag_id)
                SELECT {target}, x.id
                FROM import_row s
                CROSS JOIN LATERAL unnest(string_to_array(s.tags, ';')) AS t(name)
                JOIN tag x ON lower(x.name) = lower(t.name)
                WHERE s.tags IS NOT NULL AND {written}
                """
            )
        except UniqueViolation:
            # Repeats within a row are dropped on the client, in Python's case rules; the
            # database's lower() may still fold two of them together (rare letters).
            raise InvalidInput(
                "a row names one tag twice in different case (as the database folds case); nothing was imported"
            ) from None
        if self.options.exclusive:
            self._restore_constraints()
        self.cursor.execute("DROP TABLE import_row")
        return inserted, updated

    def _any_new_tag(self) -> bool:
        if not self.tag_names:
            return False
        self.cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM unnest(%s::text[]) n(name) "
            "WHERE NOT EXISTS (SELECT 1 FROM tag x WHERE lower(x.name) = lower(n.name)))",
            (sorted(self.tag_names),),
        )
        return self.cursor.fetchone()[0]

    def _create_tags(self, written: str) -> None:
        self._exec(
            f"""
            INSERT INTO tag (id, name)
            SELECT gen_random_uuid(), first.name FROM (
                SELECT DISTINCT ON (lower(n.name)) n.name FROM (
                    SELECT t.name, s.line, t.pos
                    FROM import_row s
                    CROSS JOIN LATERAL unnest(string_to_array(s.tags, ';')) WITH ORDINALITY AS t(name, pos)
                    WHERE s.tags IS NOT NULL AND {written}
                ) n
                WHERE NOT EXISTS (SELECT 1 FROM tag x WHERE lower(x.name) = lower(n.name))
                ORDER BY lower(n.name), n.line, n.pos
            ) first
            ON CONFLICT DO NOTHING
            """
        )

    # --exclusive: one lock for the whole load, foreign keys validated once at the end.

    def _take_tables(self) -> None:
        notify = self.options.on_notice or (lambda message: None)
        notify("--exclusive: locking tables item and item_tag until the import commits; other sessions wait")
        self.cursor.execute("LOCK TABLE item, item_tag IN ACCESS EXCLUSIVE MODE")
        self.cursor.execute(
            """
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE contype = 'f' AND conrelid IN ('item'::regclass, 'item_tag'::regclass)
            ORDER BY conrelid::regclass::text, conname
            """
        )
        self.foreign_keys = self.cursor.fetchall()
        for table, name, _definition in self.foreign_keys:
            self.cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')

    def _restore_constraints(self) -> None:
        # Re-adding a foreign key validates the whole table in one pass. A violation raises
        # here, and the rollback restores the constraints with everything else.
        for table, name, definition in self.foreign_keys:
            self.cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


class _SqliteLoader(_Loader):
    """The embedded default: a temporary table, then row-by-row writes through the ORM."""

    @contextmanager
    def loading(self) -> Iterator[None]:
        self.connection.exec_driver_sql("DROP TABLE IF EXISTS temp.import_row")
        self.connection.exec_driver_sql(
            """
            CREATE TEMP TABLE import_row (
                line INTEGER NOT NULL, rownum INTEGER NOT NULL, title TEXT NOT NULL,
                description TEXT, owner TEXT NOT NULL, tags TEXT, source TEXT,
                keep_description INTEGER NOT NULL, keep_tags INTEGER NOT NULL
            )
            """
        )
        self.pending: list[dict] = []
        yield
        self._flush()

    def add(self, row: ValidRow) -> None:
        self.pending.append(
            {
                "line": row.line,
                "rownum": row.row,
                "title": row.title,
                "description": row.description,
                "owner": row.owner,
                "tags": json.dumps(row.tags, ensure_ascii=False),
                "source": self._source_json(row),
                "keep_description": row.keep_description,
                "keep_tags": row.keep_tags,
            }
        )
        if len(self.pending) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.connection.execute(
                text(
                    "INSERT INTO import_row (line, rownum, title, description, owner, tags, source, keep_description, keep_tags) "
                    "VALUES (:line, :rownum, :title, :description, :owner, :tags, :source, :keep_description, :keep_tags)"
                ),
                self.pending,
            )
            self.pending = []

    def _staged(self) -> Iterator[tuple]:
        last = 0
        while True:
            # By record number: the records of a JSON array may all be on one line.
            batch = self._query(
                "SELECT rownum, title, description, owner, tags, keep_description, keep_tags FROM import_row "
                "WHERE rownum > :last ORDER BY rownum LIMIT :n",
                last=last,
                n=BATCH,
            )
            if not batch:
                return
            yield from batch
            last = batch[-1][0]

    def write(self) -> tuple[int, int]:
        session, mode = self.session, self.options.mode
        owners: dict[str, User] = {}  # bounded by the number of users, not of rows
        inserted = updated = 0
        now = utcnow()
        for _row, title, description, owner_name, tags_json, keep_description, keep_tags in self._staged():
            owner = owners.get(owner_name) or session.exec(select(User).where(User.username == owner_name)).one()
            owners[owner_name] = owner
            names = json.loads(tags_json)
            existing = session.exec(select(Item).where(Item.owner_id == owner.id, Item.title == title)).first()
            if existing is None:
                item = Item(id=new_id(), title=title, description=description, owner_id=owner.id, created_at=now, updated_at=now)
                session.add(item)
                session.flush()
                inserted += 1
            elif mode == "upsert" and self._changed(
                existing, existing.description if keep_description else description, None if keep_tags else names
            ):
                if not keep_description:
                    existing.description = description
                existing.updated_at = now
                session.add(existing)
                item = existing
                updated += 1
                if keep_tags:
                    session.flush()
                    continue
                session.execute(ItemTag.__table__.delete().where(ItemTag.item_id == existing.id))
            else:
                continue  # skip mode, or nothing to change
            for tag in ensure_tags(session=session, names=names):
                session.add(ItemTag(item_id=item.id, tag_id=tag.id))
            session.flush()
        self.connection.exec_driver_sql("DROP TABLE temp.import_row")
        return inserted, updated

    def _changed(self, item: Item, description: str | None, names: list[str] | None) -> bool:
        """Whether the row changes the item; ``names`` None: the tags are left alone."""
        if item.description != description:
            return True
        if names is None:
            return False
        current = self.session.exec(
            select(Tag.name).join(ItemTag, ItemTag.tag_id == Tag.id).where(ItemTag.item_id == item.id)
        ).all()
        return sorted(fold_case(n) for n in current) != sorted(fold_case(n) for n in names)


# -- export -----------------------------------------------------------------------------------------


def export_items(*, session: Session, actor: User, filters, out: IO[bytes], fmt: Literal["csv", "jsonl"]) -> int:
    """Stream the matching items, oldest first, in a format ``items import`` reads back."""
    from itemctl.services.items import export_statement

    connection = session.connection()
    statement = export_statement(session=session, actor=actor, filters=filters, tags_as_list=fmt == "jsonl")
    if connection.dialect.name == "postgresql":
        return _export_postgres(connection, statement, out, fmt)
    return _export_rows(connection, statement, out, fmt)


def _export_postgres(connection: Connection, statement, out: IO[bytes], fmt: str) -> int:
    """COPY … TO STDOUT: the server formats, the client only moves bytes."""
    compiled = statement.compile(dialect=connection.dialect)
    query = str(compiled)
    params = compiled.params
    if fmt == "csv":
        copy_sql = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    else:
        # row_to_json never emits a raw newline, and CSV mode with quote and delimiter
        # characters that JSON text cannot contain unescaped passes each line through as is.
        copy_sql = (
            f"COPY (SELECT row_to_json(r) FROM ({query}) r) TO STDOUT "
            "WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        )
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(copy_sql, params) as copy:
        for block in copy:
            out.write(block)
    rows = cursor.rowcount
    return rows


def _export_rows(connection: Connection, statement, out: IO[bytes], fmt: str) -> int:
    writer = codecs.getwriter("utf-8")(out)
    rows = csv_writer(writer) if fmt == "csv" else None
    if rows:
        rows.writerow(FIELDS)
    count = 0
    for title, description, owner, tags in connection.execute(statement).yield_per(BATCH):
        names = sorted(tags or [], key=tag_order) if isinstance(tags, list) else _split(tags)
        if rows:
            rows.writerow([title, description or "", owner, ";".join(names)])
        else:
            record = {"title": title, "description": description, "owner": owner, "tags": names}
            writer.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    writer.flush()
    return count


def _split(tags: str | None) -> list[str]:
    return sorted(tags.split(";"), key=tag_order) if tags else []
