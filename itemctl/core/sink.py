"""The output gate: every byte a command writes as data passes through one ``Sink``.

A sink knows what it writes to (a terminal, a pipe, a regular file, another special file
such as ``/dev/full``) and answers for it once, for every command and every format:

- JSON is lossless and inert everywhere: C0, DEL, C1, the bidirectional controls and
  U+2028/U+2029 are written as ``\\uXXXX`` whatever the sink (``json_text``);
- on a terminal, every other text is shown as data: control characters escaped
  (``\\x1b``, ``\\r``), so a value another program stored is never an instruction to the
  terminal. To a pipe or a file the bytes pass exactly, so round trips hold;
- a reader that went away (``| head``) ends the command quietly, exit 0, as ripgrep does
  (``ReaderGone``);
- no space left, an I/O error or a file too large is exit 6 naming the target and the
  cause (``OutputFailed``).
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from itemctl.core.errors import InvalidInput, ItemctlError
from itemctl.core.text import escape_controls

# What JSON text may not carry raw: C0 (json.dumps escapes it already), DEL, C1, the
# bidirectional overrides, isolates and marks, the zero-width space, word joiner and BOM,
# and the line and paragraph separators. Outside
# strings JSON text is ASCII, so escaping these wherever they appear is right; a raw
# newline is only ever the end of a record (JSON lines), and stays.
_JSON_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\u061c\u200b\u200e\u200f\u2060\ufeff]")


def json_text(value: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with nothing a terminal or
    a JavaScript parser would act on: those characters become ``\\uXXXX``."""
    if value.isascii() and value.isprintable():
        return value
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", value)


def to_json(value, **options) -> str:
    """``json.dumps`` as itemctl writes JSON: UTF-8 text, unsafe characters escaped."""
    import json

    return json_text(json.dumps(value, ensure_ascii=False, **options))


class ReaderGone(ItemctlError):
    """The reader of the output went away (``| head``): not an error, the command ends."""

    exit_code = 0


class OutputFailed(InvalidInput):
    """An output could not be written: no space, an I/O error, a file too large."""

    def __init__(self, message: str, *, target: str) -> None:
        super().__init__(message)
        self.target = target


# What can go wrong with an output rather than with the command.
OUTPUT_ERRNOS = (errno.EPIPE, errno.ECONNRESET, errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EROFS)


def output_error(error: OSError, target: str) -> ItemctlError:
    """What an ``OSError`` while writing ``target`` means to the user."""
    if isinstance(error, BrokenPipeError) or error.errno in (errno.EPIPE, errno.ECONNRESET):
        return ReaderGone("the reader of the output went away")
    return OutputFailed(f"cannot write {target}: {error.strerror or error}", target=target)


def kind_of(stream) -> str:
    """``terminal``, ``pipe``, ``file`` or ``special`` (a device such as /dev/null)."""
    if stream.isatty():
        return "terminal"
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return "pipe"  # an in-memory stream (tests): treated as a pipe
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "pipe"
    return "special"


class Sink:
    """One output of a command, binary underneath; ``write`` takes text or bytes.

    ``json``: what passes is JSON text (escaped by ``json_text`` on every sink).
    """

    def __init__(
        self, stream: IO[bytes], *, target: str, kind: str, json: bool = False, finish: Callable[[], None] | None = None
    ) -> None:
        self.stream = stream
        self.target = target
        self.kind = kind
        self.json = json
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._finish = finish

    @property
    def terminal(self) -> bool:
        return self.kind == "terminal"

    def write(self, data: str | bytes) -> None:
        if self.json or self.terminal:
            text = data if isinstance(data, str) else self._decoder.decode(data)
            if self.json:
                text = json_text(text)
            if self.terminal:
                text = escape_controls(text, keep_newlines=True)
            data = text
        self.write_styled(data)

    def write_styled(self, data: str | bytes) -> None:
        """Write as is: only for text itemctl rendered itself from escaped values (a
        table with its styles)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            self.stream.write(data)
        except OSError as error:
            raise output_error(error, self.target) from None

    def flush(self) -> None:
        if getattr(self.stream, "closed", False):
            return  # finished: everything was written out
        with self.guard():
            self.stream.flush()

    def finish(self) -> None:
        """Write out all that was written (a file: flushed and synced to disk), so that a
        full disk or an I/O error is found now, while the command can still roll back;
        nothing more may be written. What is left for the end is putting a file in place."""
        with self.guard():
            (self._finish or self.stream.flush)()

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            raise output_error(error, self.target) from None


STDOUT = "standard output"


def stdout(*, json: bool = False) -> Sink:
    """The sink on standard output, as it is now (tests replace ``sys.stdout``)."""
    out = sys.stdout
    try:
        out.flush()  # anything written through the text layer goes first
    except OSError as error:
        raise output_error(error, STDOUT) from None
    return Sink(out.buffer, target=STDOUT, kind=kind_of(out), json=json)


def silence_stdout() -> None:
    """After the reader went away or the disk filled up: point stdout at /dev/null, so
    that what is still buffered has nowhere to fail when the interpreter exits (the recipe
    of Python's signal documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


@contextmanager
def compressed(out: Sink, *, json: bool = False) -> Iterator[Sink]:
    """A sink that gzips onto ``out`` (a ``.gz`` target), the same bytes for the same data:
    no time or name in the gzip header. ``json`` applies before compression."""
    import gzip

    packed = gzip.GzipFile(fileobj=_RawSink(out), mode="wb", mtime=0, filename="")

    def finish() -> None:
        packed.close()  # the gzip trailer; closing again does nothing
        out.finish()

    yield Sink(packed, target=out.target, kind="file", json=json, finish=finish)  # type: ignore[arg-type]
    packed.close()
    out.flush()


@contextmanager
def text_lines(out: Sink) -> Iterator[IO[str]]:
    """A text stream onto ``out``, buffered in blocks; what was written reaches ``out``
    only when the block succeeds."""
    text = io.TextIOWrapper(_RawSink(out), encoding="utf-8", newline="")  # type: ignore[arg-type]
    yield text
    text.flush()
    out.flush()


class _RawSink(io.RawIOBase):
    """A sink as the binary file object ``io`` and ``gzip`` expect."""

    def __init__(self, out: Sink) -> None:
        super().__init__()
        self.out = out

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.out.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to do: each write reached the sink (flushing it is the caller's)."""
