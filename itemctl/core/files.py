"""The one way itemctl writes a file: beside the target, renamed into place on success.

Every file itemctl writes (``items export --file``, ``items import --rejects``, ``db dump
--file``) goes through ``atomic_output``, which hands the command a ``Sink`` (the output
gate, ``itemctl.core.sink``):

- a failure leaves no partial file and never touches an existing one; a file replaced
  keeps its permissions, a new one gets what any new file of the user gets (umask);
- a target that is a symlink is written through it: the file it points to is replaced,
  the link stays (unless another user planted it in a shared sticky directory);
- a name ending in ``.gz`` is written gzipped (``db dump``, ``items export``, ``--rejects``);
- a target that is not a regular file (a FIFO, ``/dev/stdout``, ``/dev/full``) receives
  the content only once the command succeeded: it is spooled until then;
- a target that is something the command reads (its input, the database file and its
  companions) or another of its outputs is refused (exit 2) before anything is opened
  for writing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from itemctl.core.errors import InvalidInput, UsageError
from itemctl.core.invocation import current
from itemctl.core.sink import STDOUT, Sink, compressed

STDIN = "-"


def check_output_path(path: str, *, option: str, reads: Mapping[str, str] = {}) -> os.stat_result | None:  # noqa: B006 - never mutated
    """Refuse a target that is one of ``reads`` (exit 2) or cannot be written (exit 6);
    return what the target is now (None: it does not exist yet).

    ``reads`` maps what the command reads or writes otherwise to how to name it: a path,
    ``-`` for standard input, or ``STDOUT``. The same file is recognised by its resolved
    path (for a file not created yet, such as a database's ``-wal``) and by device and
    inode (a symlink, a hard link, ``/dev/stdout``).
    """
    if not path:
        raise UsageError(f"{option} needs a path; it is empty", hint=f"give {option} a file name")
    try:
        target = os.stat(path)
    except FileNotFoundError:
        target = None
    except OSError as error:
        raise InvalidInput(f"cannot write {option} {path}: {error.strerror}") from None
    descriptor = descriptor_of(path)
    if descriptor is not None:
        _check_descriptor(descriptor, path, option)
    special = _is_special(target) or descriptor is not None
    if not special:
        _refuse_planted_link(path, option)
    resolved = os.path.realpath(path)
    for source, what in reads.items():
        other = _stat_of(source)
        same_path = source not in (STDIN, STDOUT) and os.path.realpath(source) == resolved
        # A device or a FIFO is one only with the very stream (/dev/stdout on a pipe).
        kinds_match = other is not None and (stat.S_ISREG(other.st_mode) or (special and source == STDOUT))
        if same_path or (kinds_match and target is not None and _inode(other) == _inode(target)):
            raise UsageError(f"{option} {path} is {what}; it would be overwritten", hint=f"give {option} another path")
    if special:
        return target  # written in place, once the command succeeded
    if target is not None and stat.S_ISDIR(target.st_mode):
        raise InvalidInput(f"cannot write {option} {path}: it is a directory")
    directory = os.path.dirname(resolved)
    if not os.path.isdir(directory):
        raise InvalidInput(f"cannot write {option} {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK) and (target is None or stat.S_ISREG(target.st_mode)):
        raise InvalidInput(f"cannot write {option} {path}: directory {directory} is not writable")
    return target


def _stat_of(source: str) -> os.stat_result | None:
    """What a path, standard input (``-``) or standard output is, if anything."""
    try:
        if source == STDIN:
            return os.fstat(sys.stdin.fileno())
        if source == STDOUT:
            return os.fstat(sys.stdout.fileno())
        return os.stat(source)
    except (OSError, ValueError, AttributeError):
        return None


def _inode(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def _refuse_planted_link(path: str, option: str) -> None:
    """A symlink in a world-writable sticky directory (``/tmp``) that someone else owns is
    not followed, as the kernel's ``fs.protected_symlinks`` refuses it to ``open()``:
    another user must not choose which of our files a command replaces."""
    try:
        link = os.lstat(path)
        if not stat.S_ISLNK(link.st_mode):
            return
        directory = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return
    sticky_and_shared = directory.st_mode & stat.S_ISVTX and directory.st_mode & stat.S_IWOTH
    if sticky_and_shared and link.st_uid not in (os.geteuid(), directory.st_uid):
        raise UsageError(
            f"{option} {path} is a symbolic link another user owns in a shared directory; it is not followed",
            hint=f"give {option} a path of your own",
        )


@contextmanager
def atomic_output(
    path: str, *, option: str, reads: Mapping[str, str] = {}, json: bool = False  # noqa: B006 - never mutated
) -> Iterator[Sink]:
    """A sink whose content becomes ``path`` only if the block succeeds; a name ending in
    ``.gz`` is written gzipped. ``json``: the content is JSON text (see ``Sink``)."""
    if not path.lower().endswith(".gz"):
        with _atomic(path, option=option, reads=reads, json=json) as out:
            yield out
        return
    with _atomic(path, option=option, reads=reads) as out, compressed(out, json=json) as packed:
        yield packed


@contextmanager
def _atomic(path: str, *, option: str, reads: Mapping[str, str], json: bool = False) -> Iterator[Sink]:
    target = check_output_path(path, option=option, reads=reads)
    descriptor = descriptor_of(path)
    if descriptor is not None:
        # A copy taken now: the number cannot come to mean another file meanwhile.
        yield from _spooled(path, json=json, descriptor=os.dup(descriptor))
        return
    if _is_special(target):
        yield from _spooled(path, json=json)
        return
    resolved = os.path.realpath(path)
    directory = os.path.dirname(resolved)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(resolved)}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise InvalidInput(f"cannot write {option} {path}: {error.strerror}") from None
    temporaries = current().temporaries
    temporaries.add(temporary)
    out = os.fdopen(handle, "wb")
    try:
        # A file that exists keeps its permissions (a private backup stays private); a new
        # one gets what any new file of the user gets.
        os.chmod(temporary, stat.S_IMODE(target.st_mode) if target is not None else 0o666 & ~_umask())
        sink = Sink(out, target=path, kind="file", json=json, finish=lambda: (out.flush(), os.fsync(out.fileno())))
        yield sink
        with sink.guard():
            out.flush()
            os.fsync(out.fileno())
            out.close()
        os.replace(temporary, resolved)
    except BaseException:
        _close_quietly(out)  # what is still buffered would fail again; it is not wanted
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    finally:
        temporaries.discard(temporary)


def descriptor_of(path: str) -> int | None:
    """The descriptor of this process a path names (``/dev/stdout``, ``/dev/stderr``,
    ``/dev/fd/3``, ``/proc/self/fd/1``, through any link), if any. Such a target is the
    stream itself: written through the descriptor, never reopened or renamed over, so
    ``--file /dev/stdout >> app.log`` appends to the log."""
    fd_directory = re.compile(rf"/proc/{os.getpid()}(?:/task/\d+)?/fd")
    current = os.path.abspath(path)
    for _ in range(16):  # /dev/stdout -> /proc/self/fd/1
        directory, name = os.path.split(current)
        directory = os.path.realpath(directory)
        if name.isdigit() and fd_directory.fullmatch(directory):
            return int(name)
        try:
            link = os.readlink(os.path.join(directory, name))
        except OSError:
            return None
        current = os.path.join(directory, link)
    return None


def _check_descriptor(descriptor: int, path: str, option: str) -> None:
    """A descriptor target must be open, for writing (checked before the command runs)."""
    standard = {0: sys.stdin, 1: sys.stdout, 2: sys.stderr}
    try:
        if descriptor > MAX_DESCRIPTOR or (descriptor in standard and standard[descriptor] is None):
            raise OSError(errno.EBADF, "not open")
        flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
    except OSError:
        raise UsageError(
            f"{option} {path} names descriptor {descriptor}, which is not open",
            hint=f"open it for writing first (for example {descriptor}>file), or give {option} a file name",
        ) from None
    if flags & os.O_ACCMODE == os.O_RDONLY:
        raise InvalidInput(f"cannot write {option} {path}: descriptor {descriptor} is open for reading only")


MAX_DESCRIPTOR = 2**31 - 1


def _is_special(target: os.stat_result | None) -> bool:
    """A FIFO, a socket or a device: written in place, never renamed over."""
    return target is not None and not stat.S_ISREG(target.st_mode) and not stat.S_ISDIR(target.st_mode)


def _close_quietly(out) -> None:
    try:
        out.close()
    except OSError:
        try:
            os.close(out.fileno())
        except (OSError, ValueError):
            pass


def _spooled(path: str, *, json: bool, descriptor: int | None = None) -> Iterator[Sink]:
    """A FIFO or a device (or the open ``descriptor`` a path such as /dev/stdout names)
    gets what the command wrote once it succeeded: renaming over it would replace the
    device, not write to it; writing as we go would hand a reader half a result of a
    command that then fails."""
    try:
        with tempfile.TemporaryFile() as spool:
            yield Sink(spool, target=path, kind="special", json=json)
            spool.seek(0)
            if descriptor is not None:  # what itemctl wrote there itself goes first
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(OSError, ValueError, AttributeError):
                        stream.flush()
            with Sink(spool, target=path, kind="special").guard():
                if descriptor is not None:
                    out, descriptor = os.fdopen(descriptor, "wb"), None  # the file object closes it now
                else:
                    out = open(path, "wb")  # noqa: SIM115 - closed just below
                with out:
                    if out.isatty():  # /dev/tty, or /dev/stdout on a terminal: shown as data
                        shown = Sink(out, target=path, kind="terminal")
                        while block := spool.read(1 << 16):
                            shown.write(block)
                    else:
                        shutil.copyfileobj(spool, out)
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current
