"""One run of itemctl: what lasts as long as a command, and not a moment longer.

``main()`` creates an ``Invocation`` for each command line (the CLI's ``State``, which adds
the global options) and makes it the current one while the command runs; the Ctrl-C
handler closes over it. Everything an invocation accumulates lives here, not in module
globals: how much to say, the secrets to mask, the questions already answered, the
temporary files being written and whether a COMMIT is under way or has happened.

Code deep in the stack (the logger, the redactor, the atomic writer, the commit) reaches
it through ``current()``, a context variable, as Click reaches its own context. Code
that runs without ``main()`` (a service test, a library user) gets a fresh invocation of
its own the first time it asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

QUIET, NORMAL, VERBOSE = -1, 0, 1


def _ask_on_the_terminal(question: str) -> bool:
    import typer

    return typer.confirm(question, default=False, err=True)


@dataclass(eq=False)
class Invocation:
    verbosity: int = NORMAL
    # Passwords found in the configuration, masked in every message on their way out.
    secrets: set[str] = field(default_factory=set, repr=False)
    # How a question is put to the person at the terminal (True: yes); tests pass their own.
    ask: Callable[[str], bool] = field(default=_ask_on_the_terminal, repr=False)
    # Questions answered yes: a command run again after a deadlock does not ask twice.
    confirmed: set[str] = field(default_factory=set)
    # Temporary output files being written: Ctrl-C removes them on its way out.
    temporaries: set[str] = field(default_factory=set)
    # True while a COMMIT is under way: an interruption then cannot say whether it happened.
    committing: bool = False
    # True once a change was committed: an output that fails afterwards says so.
    committed: bool = False
    # True while a progress bar is drawn: Ctrl-C clears its line first.
    drawing: bool = False

    def add_secret(self, value: str | None) -> None:
        if value:
            self.secrets.add(value)

    def redact(self, text: str) -> str:
        """``text`` with every secret masked (longest first, so a secret that contains
        another is masked whole)."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def discard_temporaries(self) -> None:
        """Remove the temporary files being written (an interrupted command's way out, as
        the failure path of ``core.files.atomic_output`` would)."""
        import os

        for path in list(self.temporaries):
            try:
                os.unlink(path)
            except OSError:
                pass


_current: ContextVar[Invocation] = ContextVar("itemctl_invocation")


def register_secret(value: str | None) -> None:
    """A value never to print (a password found in the configuration), as soon as it is
    read: every message is passed through ``redact`` on its way out."""
    current().add_secret(value)


def redact(text: str) -> str:
    return current().redact(text)


def current() -> Invocation:
    """The invocation running now; outside ``main()``, a fresh one for this context."""
    try:
        return _current.get()
    except LookupError:
        invocation = Invocation()
        _current.set(invocation)
        return invocation


@contextmanager
def running(invocation: Invocation) -> Iterator[Invocation]:
    """Make ``invocation`` the current one for the duration of the block."""
    token = _current.set(invocation)
    try:
        yield invocation
    finally:
        _current.reset(token)
