"""Where a command's input comes from: a file, or stdin for ``-``."""

from __future__ import annotations


def open_input(file: str):
    """The input as a binary stream, and its size when known (for the progress bar)."""
    import os
    import sys

    from itemctl.core.errors import InvalidInput

    if file == "-":
        return sys.stdin.buffer, None
    try:
        stream = open(file, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        # Not found (3) names a missing item, user or tag; a missing input is a bad input.
        raise InvalidInput(f"no such file: {file}") from None
    except OSError as error:
        raise InvalidInput(f"cannot read {file}: {error.strerror}") from None
    return stream, os.fstat(stream.fileno()).st_size
