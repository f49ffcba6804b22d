"""The root command: global options, the command groups, and ``main()``.

``main()`` is the single error boundary: every ItemctlError becomes one ``error:`` line on
stderr and its exit code; anything else is a bug (exit 1). Tracebacks only with
``--verbose`` or ``ITEMCTL_DEBUG=1``. Nothing heavy is imported here, so ``--help`` and
``--version`` stay fast.
"""


import os
import sys
import time
from contextlib import contextmanager
from typing import Annotated, Optional

import typer

from typer.core import TyperGroup

from itemctl import MAX_TIMEOUT, SCHEMA_HEAD, __version__
from itemctl.cli.output import ClosedStream
from itemctl.cli.runtime import State
from itemctl.cli.status import status_command
from itemctl.core.errors import ItemctlError, TransientConflict, classify
from itemctl.core.invocation import NORMAL, QUIET, VERBOSE, current, running
from itemctl.core.logging import is_verbose, notice, say

# The command groups: each module's Typer app, built into the command tree only when the
# command line names it (Click's "lazily loading subcommands"), so `itemctl --help` and a
# command of one group pay for no other group's module. The help shown in `itemctl --help`.
GROUPS = {
    "items": ("itemctl.cli.items", "Manage items."),
    "users": ("itemctl.cli.users", "Manage users."),
    "tags": ("itemctl.cli.tags", "Manage tags."),
    "db": ("itemctl.cli.db", "Migrate and inspect the database schema."),
    "audit": ("itemctl.cli.audit", "Read the audit trail."),
}


class Root(TyperGroup):
    """The root group: ``status``, then the groups of GROUPS, each loaded when named."""

    def list_commands(self, ctx) -> list[str]:
        return [*(name for name in self.commands if name not in GROUPS), *GROUPS]

    def get_command(self, ctx, cmd_name: str):
        if cmd_name in GROUPS and cmd_name not in self.commands:
            self.commands[cmd_name] = _load_group(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx, formatter) -> None:
        """The groups by their help alone, without loading them."""
        from typer.core import TyperCommand

        loaded = self.commands
        shown = {name: loaded.get(name) or TyperCommand(name, help=GROUPS[name][1]) for name in GROUPS}
        self.commands = {**shown, **loaded}
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.commands = loaded


def _load_group(name: str):
    import importlib

    from typer.main import TyperInfo, get_group_from_info

    from itemctl.cli.values import guard

    module, help_text = GROUPS[name]
    group = get_group_from_info(
        TyperInfo(importlib.import_module(module).app, name=name, help=help_text),
        pretty_exceptions_short=app.pretty_exceptions_short,
        suggest_commands=app.suggest_commands,
        rich_markup_mode=app.rich_markup_mode,
    )
    guard(group)  # the input gate, as for the root's own options
    return group


def command_tree():
    """The whole command tree, every group loaded (for the reference and the sweeps)."""
    root = typer.main.get_command(app)
    root.commands = {name: root.get_command(None, name) for name in root.list_commands(None)}
    return root


app = typer.Typer(
    name="itemctl",
    cls=Root,
    help="Administer the users, items and tags of an itemctl database.",
    epilog="Example: itemctl --as alice items list --tag urgent -o json",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("status")(status_command)


VERSION_AS_JSON = (["-o", "json"], ["--output", "json"], ["--output=json"], ["-ojson"])


def version_text(as_json: bool = False) -> str:
    """``itemctl <version> (schema head <revision>)``, or the same as one JSON object."""
    if as_json:
        import json

        return json.dumps({"version": __version__, "schema_head": SCHEMA_HEAD})
    return f"itemctl {__version__} (schema head {SCHEMA_HEAD})"


def _version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        Optional[str],
        typer.Option("--database-url", metavar="URL", help="Database URL (beats every other setting)."),
    ] = None,
    as_user: Annotated[
        Optional[str],
        typer.Option("--as", metavar="USERNAME", help="Act as this user [env: ITEMCTL_USER]."),
    ] = None,
    email: Annotated[
        Optional[str],
        typer.Option("--email", metavar="EMAIL", help="Email for an actor created on first use [env: ITEMCTL_EMAIL]."),
    ] = None,
    env: Annotated[
        Optional[str],
        typer.Option("--env", metavar="ENV", help="Environment name [env: ITEMCTL_ENV, ENVIRONMENT; default: local]."),
    ] = None,
    connect_timeout: Annotated[
        Optional[float],
        typer.Option("--connect-timeout", metavar="S", min=0, max=MAX_TIMEOUT, help="Seconds to wait for a connection [default: 10]."),
    ] = None,
    lock_timeout: Annotated[
        Optional[float],
        typer.Option(
            "--lock-timeout",
            metavar="S",
            min=0,
            max=MAX_TIMEOUT,
            help="Seconds to wait for a lock another session holds, then exit 4 naming it [env: ITEMCTL_LOCK_TIMEOUT; default: 30].",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log SQL statements and show tracebacks.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Silence notices, summaries and progress.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    state: State = ctx.ensure_object(State)  # main() passes its own
    state.verbosity = VERBOSE if verbose else QUIET if quiet else NORMAL
    state.given(
        database_url=database_url,
        user=as_user,
        email=email,
        environment=env,
        connect_timeout=connect_timeout,
        lock_timeout=lock_timeout,
    )


def _error(message: str, hint: str | None = None, *, code: int = 1, as_json: bool = False) -> None:
    """The one line a failure prints on stderr: ``error: …`` for people, or, when the
    command's output is JSON (``-o json``/``-o ndjson``), one JSON object for programs."""
    if as_json:
        from itemctl.core.errors import KINDS
        from itemctl.core.sink import to_json

        one_line = lambda text: text if text is None else " ".join(text.split())  # noqa: E731 - a driver's trailing newline
        say(to_json({"error": {"code": code, "kind": KINDS.get(code, "internal"), "message": one_line(message), "hint": one_line(hint)}}))
        return
    line = f"error: {message}"
    if hint:
        line += f" (hint: {hint})"
    # One line, whatever the message holds (a driver's message, a user's value).
    say(" ".join(line.split()))


JSON_FORMATS = ("json", "ndjson")


def errors_as_json(args: list[str]) -> bool:
    """Whether the command line asks for JSON output (``-o json``, ``--output=ndjson``…),
    and so for failures as JSON: the options before a ``--``, as the parser reads them."""
    for index, arg in enumerate(args):
        if arg == "--":
            return False
        if arg in ("-o", "--output") and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--output="):
            value = arg.removeprefix("--output=")
        elif arg.startswith("-o") and not arg.startswith("--"):
            value = arg[2:]
        else:
            continue
        if value in JSON_FORMATS:
            return True
    return False


def _traceback_wanted() -> bool:
    return is_verbose() or os.environ.get("ITEMCTL_DEBUG") == "1"


def _print_traceback(error: BaseException) -> None:
    from itemctl.core.logging import format_traceback

    print(format_traceback(error), file=sys.stderr, end="", flush=True)


def _guard_standard_streams() -> None:
    """Closed standard streams: stdin and stdout fail when used (exit 2); stderr, which
    only people read, goes nowhere, so nothing meant for it ever lands on stdout."""
    import os

    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    if sys.stdout is None:
        sys.stdout = ClosedStream("output")
    if sys.stdin is None:
        sys.stdin = ClosedStream("input")


TRANSIENT_ATTEMPTS = 3


def main(argv: list[str] | None = None, *, state: State | None = None) -> int:
    """Run itemctl and return its exit code.

    Each call is one invocation (``state``, a fresh ``State`` unless given: tests give
    their own to answer questions): the global options, verbosity, secrets, answered
    questions, temporary files and whether a COMMIT is under way live on it, and on
    nothing else. A command is one transaction, so one that failed on a serialization
    failure or a deadlock left nothing behind and printed no data: it is run again, a
    bounded number of times (never when it read stdin, which cannot be read twice), in
    the same invocation, so a question answered yes is not asked again.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    state = State() if state is None else state
    _guard_standard_streams()
    with running(state), _interruptible(state):
        return _main(args, state)


@contextmanager
def _interruptible(state: State):
    """Ctrl-C ends the process at once, whatever it is doing.

    A command is one transaction, so the server rolls back whatever the closed connection
    left (as after kill -9, which the fault tests exercise); trying to roll back from
    inside an interrupted driver call (a COPY being finished, a result being read) can
    hang instead. Temporary output files go too. Where SIGINT was ignored (a background
    job), it stays ignored.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: _stop_now(state))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_now(state: State) -> None:
    state.discard_temporaries()
    if state.committing:
        message = "error: interrupted during COMMIT: the change may or may not have been applied"
    else:
        message = "error: interrupted; nothing was changed (the transaction is rolled back)"
    if state.drawing:
        from itemctl.cli.progress import RESTORE_TERMINAL  # imported already: it is drawing

        message = RESTORE_TERMINAL + message
    try:
        os.write(2, (message + "\n").encode())
    finally:
        os._exit(130)


def _main(args: list[str], state: State) -> int:
    as_json = errors_as_json(args)
    if args and args[0] == "--version" and (len(args) == 1 or args[1:] in VERSION_AS_JSON):
        # Scripts and shells ask this often: answer before Typer builds the command tree.
        try:
            print(version_text(as_json=len(args) > 1), flush=True)
        except OSError as error:
            from itemctl.core.sink import output_error

            return _fail(output_error(error, "standard output"), as_json)
        return 0
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            return _run(args, state, as_json)
        except TransientConflict as error:
            if attempt == TRANSIENT_ATTEMPTS or "-" in args:
                return _fail(error, as_json)
            notice(f"{error.message}; trying again ({attempt}/{TRANSIENT_ATTEMPTS - 1})")
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def _fail(error: ItemctlError, as_json: bool = False) -> int:
    from itemctl.cli.wording import worded

    worded(error)
    from itemctl.core.sink import STDOUT, OutputFailed, ReaderGone, silence_stdout

    if isinstance(error, ReaderGone) or (isinstance(error, OutputFailed) and error.target == STDOUT):
        # The reader of the output went away (the command is done), or stdout is full:
        # what is still buffered must not fail again when the interpreter exits.
        silence_stdout()
        if isinstance(error, ReaderGone):
            return 0
    if isinstance(error, OutputFailed) and current().committed:
        # stdout, or a device or FIFO given as a file, which get their content only then
        error.message += "; the change itself was committed"
    if _traceback_wanted():
        _print_traceback(error)
    _error(error.message, error.hint, code=error.exit_code, as_json=as_json)
    return error.exit_code


def _run(args: list[str], state: State, as_json: bool = False) -> int:
    """One invocation; every error but a transient conflict becomes an exit code here."""
    try:
        from itemctl.cli.values import guard

        command = typer.main.get_command(app)
        guard(command)  # the input gate: every value checked by its kind first
        result = command.main(args=args, prog_name="itemctl", standalone_mode=False, obj=state)
    except TransientConflict:
        raise
    except ItemctlError as error:
        return _fail(error, as_json)
    except typer.TyperException as error:  # usage errors: unknown option, missing argument
        code = getattr(error, "exit_code", 2)
        _error(error.format_message(), "see --help", code=code, as_json=as_json)
        return code
    except typer.Abort as error:
        if isinstance(error.__cause__, EOFError):  # click's word for an input that ends early
            from itemctl.core.errors import InvalidInput

            return _fail(InvalidInput(f"the input ends early: {error.__cause__ or 'unexpected end of data'}"), as_json)
        _error("aborted", code=130, as_json=as_json)
        return 130
    except KeyboardInterrupt:
        _error("interrupted", code=130, as_json=as_json)
        return 130
    except Exception as error:
        from itemctl.core.sink import OUTPUT_ERRNOS, output_error

        if isinstance(error, OSError) and error.filename is None and error.errno in OUTPUT_ERRNOS:
            # Output written outside the gate (Typer's help, a version line).
            return _fail(output_error(error, "standard output"), as_json)
        classified = classify(error)
        if isinstance(classified, TransientConflict):
            raise classified from error
        if classified is not None:
            classified.__cause__ = error
            return _fail(classified, as_json)
        # A bug: say so, in one line unless asked for more.
        from itemctl.core.errors import primary_message

        if _traceback_wanted():
            _print_traceback(error)
        _error(
            f"internal error: {type(error).__name__}: {primary_message(error)}",
            None if _traceback_wanted() else "rerun with --verbose for the traceback",
            code=1,
            as_json=as_json,
        )
        return 1
    return result if isinstance(result, int) else 0
