"""Readers: CSV, JSON lines and a JSON array, one record at a time with the line it starts on.

Every reader streams: memory holds one record (and, for a JSON array, a bounded buffer),
whatever the size of the file. Encodings, delimiters and gzip are handled here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Literal

from itemctl.core.errors import InvalidInput
from itemctl.models.item import IMPORT_FIELDS

Format = Literal["csv", "jsonl", "json"]
FIELDS = IMPORT_FIELDS
# Fields itemctl itself prints (`items list -o ndjson`), accepted and ignored on the way in.
IGNORED = ("id", "created_at", "updated_at")




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

        if hasattr(stream, "peek") and not stream.peek(1):
            # gzip reads nothing as an empty stream; a gzip file has at least a header.
            raise InvalidInput("the compressed input is empty: not gzip", hint="check the file, or drop .gz from its name")
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


ENCODING_HINT = "give {encoding} (for example cp1252, latin-1 or utf-16)"


def _line_by_line(encoding: str) -> bool:
    """Encodings in which a newline is the byte 0x0a (UTF-8, the cp and latin ones): those
    are decoded a line at a time, so an undecodable byte is named by line and offset."""
    import codecs

    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise InvalidInput(f"unknown encoding {encoding!r}", hint=ENCODING_HINT, fields=("encoding",)) from None
    if not getattr(codec, "_is_text_encoding", True):  # rot13, base64, zlib: not text
        raise InvalidInput(f"{encoding!r} is not a text encoding", hint=ENCODING_HINT, fields=("encoding",))
    return codec.encode("\n")[0] == b"\n"


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
                    fields=("encoding",),
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
        raise InvalidInput(f"the input is not valid {encoding} ({error.reason})", hint=ENCODING_HINT, fields=("encoding",)) from None
    except UnicodeError as error:
        raise InvalidInput(f"the input is not valid {encoding} ({error})", hint=ENCODING_HINT, fields=("encoding",)) from None
    finally:
        # The caller owns the stream: let go of it rather than close it with the wrapper.
        text_stream.detach()


def _read_csv(text_stream, delimiter: str = ",") -> Iterator[Record]:
    if len(delimiter) != 1:
        raise InvalidInput(
            f"{{delimiter}} must be one character, not {delimiter!r}", hint="for a tab: {delimiter} $'\\t'", fields=("delimiter",)
        )
    # A field longer than any item holds is still read, so that its row is one invalid
    # row (set aside with --rejects); past this, the file is not an export of items.
    csv.field_size_limit(CSV_FIELD_LIMIT)
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
                yield Record(start, row_number, FieldCountError(len(values), width, values, dict(zip(header, values))))
                continue
            if header.ignored:
                yield Record(start, row_number, {k: v for k, v in zip(header, values) if k not in IGNORED})
            else:
                yield Record(start, row_number, dict(zip(header, values)))
    except csv.Error as error:
        raise InvalidInput(f"line {reader.line_num}: malformed CSV: {_csv_problem(error)}") from None


CSV_FIELD_LIMIT = 16 << 20  # characters


def _csv_problem(error: csv.Error) -> str:
    """Python's csv message, in terms of the file (never an option itemctl lacks)."""
    said = str(error)
    if said.startswith("field larger than field limit"):
        return f"a field is longer than {CSV_FIELD_LIMIT:,} characters (no item field holds more than 1,000)"
    if said.startswith("new-line character seen in unquoted field"):
        return "a carriage return ends a line here (old Mac line endings?): lines must end in LF or CRLF"
    return said


class _Header(list):
    """The CSV header's field names; ``trailing_blank`` when a spreadsheet added an empty one."""

    trailing_blank = False
    ignored = False  # whether it holds a field itemctl prints and import ignores


def _header(names: list[str], delimiter: str = ",") -> _Header:
    """Field names matched case- and space-insensitively (``Title `` is title); an empty
    last name (a spreadsheet's trailing column) is dropped; a repeat is named. A header
    that is one field holding another delimiter says which option reads it."""
    if len(names) == 1:
        for other, shown in ((";", "';'"), ("\t", "$'\\t'"), (",", "','"), ("|", "'|'")):
            if other != delimiter and other in names[0] and "title" in names[0].lower():
                raise InvalidInput(
                    f"line 1: the header {names[0]!r} looks separated by {other!r}, not {delimiter!r}",
                    hint=f"give {{delimiter}} {shown}",
                    fields=("delimiter",),
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
    header.ignored = any(name in IGNORED for name in header)
    return header


@dataclass
class FieldCountError:
    """A CSV row whose field count differs from the header's (invalid, not fatal)."""

    got: int
    expected: int
    values: list[str]
    fields: dict  # the values the header names, as far as they go: what the row says it is


class _RepeatedKeys(dict):
    """An object decoded whole though it names a key twice (or holds one that does), so
    that its record can be set aside as one invalid row and the reading go on."""

    repeated: str


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        marked = _RepeatedKeys(data)
        marked.repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        return marked
    for value in data.values():
        repeated = _repeated_in(value)
        if repeated is not None:
            marked = _RepeatedKeys(data)
            marked.repeated = repeated
            return marked
    return data


def _repeated_in(value: object) -> str | None:
    """The key named twice in an object within ``value`` (objects mark themselves as
    they are decoded; a list passes the mark on), if any."""
    if isinstance(value, _RepeatedKeys):
        return value.repeated
    if isinstance(value, list):
        for each in value:
            repeated = _repeated_in(each)
            if repeated is not None:
                return repeated
    return None


def _refused(data: object, source: str) -> object:
    """The record as read, or a JsonError when an object in it names a key twice (JSON
    keeps the last, silently; itemctl refuses the record)."""
    if isinstance(data, _RepeatedKeys):
        return JsonError(f"invalid record: it names {data.repeated!r} more than once", source, dict(data))
    return data


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _read_jsonl(text_stream: IO[str]) -> Iterator[Record]:
    row_number = 0
    for line_number, line in enumerate(text_stream, start=1):
        if not line.strip():
            continue
        row_number += 1
        try:
            data = _refused(_DECODER.decode(line), line.rstrip("\r\n"))
        except json.JSONDecodeError as error:
            if not line.endswith("\n"):  # the last line, cut short: the file is not whole
                raise InvalidInput(
                    f"line {line_number}: the file ends in the middle of a record ({error.msg})",
                    hint="the file was cut short: check how it was written or copied",
                ) from None
            data = JsonError(f"invalid JSON: {error.msg} (column {error.colno})", line.rstrip("\r\n"))
        except RecursionError:
            data = JsonError("invalid record: nested too deeply", line.rstrip("\r\n")[:200])
        yield Record(line_number, row_number, data)


@dataclass
class JsonError:
    reason: str
    source: str
    fields: dict | None = None  # the record, when it was decoded (a key named twice)


MAX_ELEMENT = 1 << 20  # characters: far more than any valid record of an array holds


def _read_json_array(text_stream: IO[str], chunk_size: int = 1 << 16) -> Iterator[Record]:
    """Elements of a top-level JSON array, decoded one by one from a sliding buffer."""
    decoder = _DECODER
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
            except RecursionError:
                raise InvalidInput(f"line {line}: element {row_number + 1} of the JSON array is nested too deeply") from None
        row_number += 1
        yield Record(line, row_number, _refused(data, buffer[position:end]) if isinstance(data, _RepeatedKeys) else data)
        line += buffer.count("\n", position, end)
        position = end
