"""A pipe that can be read twice: what is read is kept in an unnamed temporary file.

The direct load reads its input once and, when it finds a problem, hands the input to the
staged path, which reads it from the start. A file is simply read again; a pipe (stdin,
a FIFO) cannot be, so it is spooled as it is read: the bytes go on to the reader and into
a temporary file, and a rewind replays that file before reading on from the pipe. Memory
holds one buffer whatever the size; the file is unlinked as soon as it is made, so
nothing is left behind on any exit, Ctrl-C and ``kill -9`` included.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from itemctl.core.errors import InvalidInput

BUFFER = 1 << 20


@contextmanager
def rewindable(stream: IO[bytes]) -> Iterator[IO[bytes]]:
    """``stream`` itself when it can be read again, else a spool of it (closed after)."""
    if _seekable(stream) and _seekable(getattr(stream, "fileobj", stream)):  # gzip over a pipe: no
        yield stream
        return
    with io.BufferedReader(_Spool(stream), buffer_size=BUFFER) as spooled:
        yield spooled


def _seekable(stream) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError):
        return False


class _Spool(io.RawIOBase):
    """The bytes of ``source``, read once from it and kept in a temporary file."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.file = tempfile.TemporaryFile(prefix="itemctl-spool-")  # unlinked already
        self.spooled = 0  # bytes of the source read so far, all of them in the file
        self.position = 0  # where the reader is

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self.position
        elif whence != os.SEEK_SET or not 0 <= offset <= self.spooled:
            raise io.UnsupportedOperation("a spooled pipe rewinds only to what it has read")
        self.position = offset
        return offset

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.position < self.spooled:  # replaying
            self.file.seek(self.position)
            count = self.file.readinto(view[: self.spooled - self.position])
        else:
            data = self.source.read(len(view))
            count = len(data or b"")
            if count:
                self.file.seek(self.spooled)
                try:
                    self.file.write(data)
                except OSError as error:
                    raise InvalidInput(
                        f"cannot keep a copy of the piped input in {tempfile.gettempdir()}: {error.strerror}",
                        hint="free space there, point TMPDIR elsewhere, or import from a file",
                    ) from None
                self.spooled += count
                view[:count] = data
        self.position += count
        return count

    def close(self) -> None:
        if not self.closed:
            self.file.close()
        super().close()
