"""The one way itemctl writes a file: beside the target, renamed into place on success.

Every file itemctl writes (``items export --file``, ``items import --rejects``) goes
through ``atomic_output``: a failure leaves no partial file and never touches an existing
one, the new file gets the permissions any new file of the user gets (umask), and a
target that is the command's own input is refused before anything is opened for writing.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO

from itemctl.core.errors import InvalidInput, UsageError


def check_output_path(path: str, *, option: str, inputs: Sequence[str] = ()) -> None:
    """Refuse a target that is one of ``inputs`` (exit 2) or cannot be written (exit 6).

    The same file is recognised by device and inode, so a symlink or a hard link to the
    input is caught too; ``-`` among the inputs means standard input, which may be a file.
    """
    try:
        target = os.stat(path)
    except FileNotFoundError:
        target = None
    except OSError as error:
        raise InvalidInput(f"cannot write {option} {path}: {error.strerror}") from None
    if target is not None:
        for source in inputs:
            if _same_file(target, source):
                raise UsageError(
                    f"{option} {path} is the input file itself; it would be overwritten",
                    hint=f"give {option} another path",
                )
        if stat.S_ISDIR(target.st_mode):
            raise InvalidInput(f"cannot write {option} {path}: it is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InvalidInput(f"cannot write {option} {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK) and (target is None or stat.S_ISREG(target.st_mode)):
        raise InvalidInput(f"cannot write {option} {path}: directory {directory} is not writable")


def _same_file(target: os.stat_result, source: str) -> bool:
    try:
        other = os.fstat(sys.stdin.fileno()) if source == "-" else os.stat(source)
    except (OSError, ValueError, AttributeError):
        return False
    return (other.st_dev, other.st_ino) == (target.st_dev, target.st_ino) and stat.S_ISREG(other.st_mode)


@contextmanager
def atomic_output(
    path: str, *, option: str, inputs: Sequence[str] = (), binary: bool = False
) -> Iterator[IO]:
    """A file object whose content becomes ``path`` only if the block succeeds.

    A target that exists and is not a regular file (``/dev/null``, a FIFO) is written in
    place: renaming over it would replace the device, not write to it.
    """
    check_output_path(path, option=option, inputs=inputs)
    mode = "wb" if binary else "w"
    encoding = None if binary else "utf-8"
    newline = None if binary else ""
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        with open(path, mode, encoding=encoding, newline=newline) as special:
            yield special
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise InvalidInput(f"cannot write {option} {path}: {error.strerror}") from None
    _temporaries.add(temporary)
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, mode, encoding=encoding, newline=newline) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    finally:
        _temporaries.discard(temporary)


# Temporary files being written right now: an interrupted process removes them on its way
# out (see ``discard_temporaries``), as the failure path of ``atomic_output`` would.
_temporaries: set[str] = set()


def discard_temporaries() -> None:
    for path in list(_temporaries):
        try:
            os.unlink(path)
        except OSError:
            pass


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current
