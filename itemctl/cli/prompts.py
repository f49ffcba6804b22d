"""Questions before a destructive change: asked on a terminal, refused without one.

How a question is put (``Invocation.ask``) and which were answered yes belong to the
invocation, so a command run again after a deadlock does not ask twice.
"""

from __future__ import annotations

import sys

import typer


def must_ask(*, yes: bool, what: str) -> bool:
    """Whether to ask before a destructive change. Call it before touching the database.

    With ``--yes``: no. On a terminal: yes. Otherwise the change is refused (exit 2), so a
    script that forgot ``--yes`` changes nothing.
    """
    from itemctl.core.errors import UsageError

    if yes:
        return False
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to {what} without --yes: stdin is not a terminal; nothing changed")
    return True


def confirm(question: str) -> None:
    """Ask on the terminal; anything but yes changes nothing (exit 2).

    A question answered yes is not asked again in this invocation: a command run again
    after a deadlock does what the person already agreed to.
    """
    from itemctl.core.errors import UsageError
    from itemctl.core.invocation import current
    from itemctl.core.text import escape_controls

    invocation = current()
    if question in invocation.confirmed:
        return
    try:
        answer = invocation.ask(escape_controls(question, keep_newlines=True))
    except typer.Abort as error:
        if isinstance(error.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None  # Ctrl-C: exit 130, as anywhere
        answer = False  # Ctrl-D, or the input closed: no answer is no
        print(file=sys.stderr)  # the error starts on a line of its own
    if not answer:
        raise UsageError("not confirmed; nothing changed")
    invocation.confirmed.add(question)
