"""The input gate: every value on the command line is checked by its kind, before any
command runs and before any database work.

Typer converts each value to its declared type; this gate then holds every option and
argument of the whole command tree to the rules both backends need (contract §4):

- text is valid UTF-8: bytes that are not (``$'\\xff'``) are exit 6 naming the option,
  never a crash deep in a driver;
- an empty value never means "not given" (a script's unset variable must not widen a
  listing, or act as ``dev-user``): exit 6 naming the option, except where the empty
  value has a meaning of its own (``--description ""`` clears the description);
- text is at most 10,000 characters (no field holds more than 1,000);
- integers fit what both backends store (a signed 64-bit integer); numbers are finite.

A rejected value is echoed escaped and cut to about 60 characters with its length.
"""

from __future__ import annotations

import math

from itemctl.core.errors import InvalidInput
from itemctl.core.text import shown, undecodable

INTEGER_RANGE = (-(2**63), 2**63 - 1)  # PostgreSQL's bigint, SQLite's INTEGER
# No field holds more than 1,000 characters; a longer value is a paste gone wrong (and
# SQLite refuses LIKE patterns past 50,000 bytes).
MAX_TEXT = 10_000

# Options whose empty value means something: "" clears a description or an email; a
# database URL has checks of its own (exit 7). An empty path is exit 6 here, as every
# other empty value.
MAY_BE_EMPTY = {"description", "email", "database_url"}


def guard(command) -> None:
    """Put the gate in front of every parameter of ``command`` and its subcommands."""
    for param in getattr(command, "params", ()):
        param.callback = _gated(param.callback)
    for sub in getattr(command, "commands", {}).values():
        guard(sub)


def _gated(callback):
    def check(ctx, param, value):
        _check(param, value)
        return callback(ctx, param, value) if callback is not None else value

    return check


def _name(param) -> str:
    if param.param_type_name == "option":
        return max(param.opts, key=len)
    return param.metavar or param.name.upper()


def _check(param, value) -> None:
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for each in value:
            _check(param, each)
        return
    if isinstance(value, str):
        byte = undecodable(value)
        if byte is not None:
            raise InvalidInput(f"{_name(param)} is not valid UTF-8 (the byte {byte}): {shown(value)}")
        if "\x00" in value:  # no file name, URL or stored text can hold one
            raise InvalidInput(f"{_name(param)} holds a NUL character: {shown(value)}")
        if len(value) > MAX_TEXT:
            raise InvalidInput(f"{_name(param)} is longer than any value itemctl keeps ({MAX_TEXT:,} characters): {shown(value)}")
        if value == "" and param.name not in MAY_BE_EMPTY:
            raise InvalidInput(
                f"{_name(param)} is empty; an empty value never means \"not given\"",
                hint=f"give {_name(param)} a value, or leave it out",
            )
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        low, high = INTEGER_RANGE
        if not low <= value <= high:
            raise InvalidInput(f"{_name(param)} {shown(str(value))} is out of range ({low} to {high})")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{_name(param)} must be a finite number, not {value}")
