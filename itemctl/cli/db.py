"""``itemctl db``: migrate, downgrade and inspect the schema."""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

import json
from enum import Enum
from typing import Annotated, Optional

import typer

from itemctl.cli.output import echo_data
from itemctl.cli.prompts import confirm, must_ask
from itemctl.cli.runtime import command_session, database_errors
from itemctl.core.logging import notice

app = typer.Typer(no_args_is_help=True)  # its help: cli/__init__.py GROUPS


@app.command("migrate")
def migrate_command(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it; touches nothing.")] = False,
    allow_destructive: Annotated[
        bool, typer.Option("--allow-destructive", help="Allow migrations that drop tables or columns.")
    ] = False,
    lock_timeout: Annotated[
        Optional[float],
        typer.Option(
            "--lock-timeout",
            metavar="S",
            min=0,
            help="Give up waiting for a table lock after S seconds (retried a few times) [default: the global --lock-timeout, else 5].",
        ),
    ] = None,
    statement_timeout: Annotated[
        float, typer.Option("--statement-timeout", metavar="S", min=0, help="Cancel any statement of the run that takes longer than S seconds (0: no limit).")
    ] = 0,
    wait: Annotated[
        float, typer.Option("--wait", metavar="S", min=0, help="Wait at most S seconds for another `db migrate` to finish, then exit 4.")
    ] = 600,
) -> None:
    """Apply pending migrations; safe to run from several CI jobs at once.

    Runs in one transaction under a PostgreSQL advisory lock: concurrent runs wait, then
    find nothing to do. Refuses to drop a table or column unless --allow-destructive.

    Example: itemctl --database-url postgresql://app@db/app db migrate
    """
    from itemctl.services import schema

    state = ctx.obj
    if lock_timeout is None:
        lock_timeout = state.lock_timeout if state.lock_timeout is not None else schema.DEFAULT_LOCK_TIMEOUT
    if sql:
        sql_text = _review_sql(state, revision, lock_timeout=lock_timeout, statement_timeout=statement_timeout)
        if sql_text:
            echo_data(sql_text)
        return
    with database_errors(state):
        if state.config().database.is_postgres:
            from itemctl.core.db import reader
            from itemctl.services import grants

            with reader(state.engine()) as connection:
                # Even with nothing to apply: a deploy's gate run as the application role
                # fails now, not at the next migration.
                grants.require_owner(connection, to="migrate the schema", because="a migration would be refused half-way")
        result = schema.migrate(
            state.engine(create=True),
            revision=revision,
            allow_destructive=allow_destructive,
            lock_timeout=lock_timeout,
            statement_timeout=statement_timeout,
            wait=wait,
            actor=state.config().user,
            on_notice=notice,
        )
    where = f"database {state.config().database.display()}"
    if result.newer:
        # Rolling back to an older itemctl must not fail on its migrate step; `db check`
        # is the strict gate.
        notice(
            f"warning: nothing to migrate: {where} is at revision {result.before}, "
            f"newer than this itemctl (head {schema.head_revision()}); nothing was changed"
        )
    elif result.applied:
        notice(f"migrated {where}: {result.before or 'empty'} -> {result.after}, applied {', '.join(result.applied)}")
        for operation in result.destructive:
            notice(f"destructive operation applied: {operation}")
    else:
        notice(f"nothing to migrate: {where} is at {result.after}")


def _review_sql(state, revision: str, *, downgrade_to: str | None = None, **timeouts) -> str:
    """The SQL a run would execute on this database, from its current revision; from the
    base (saying so) when the database cannot be reached."""
    from itemctl.core.errors import ItemctlError
    from itemctl.services import schema

    url = state.config().database.url
    try:
        with database_errors(state):
            current = None if state.absent() else schema.current(state.engine())
    except ItemctlError as error:
        if downgrade_to is not None:
            raise
        notice(f"the database cannot be read ({error.message}); showing the SQL from the base")
        current = None
    if current is not None and schema.is_newer(current) and downgrade_to is None:
        # As `db migrate` itself: nothing to run, and a rollback's pipeline goes on.
        notice(
            f"warning: nothing to migrate: the database is at revision {current}, newer than this itemctl "
            f"(head {schema.head_revision()})"
        )
        return ""
    if current is not None and schema.is_newer(current):
        raise schema.newer_error(current, schema.head_revision())
    if downgrade_to is not None:
        if current is None:
            from itemctl.core.errors import SchemaError

            raise SchemaError("the database has no itemctl schema; nothing to downgrade")
        return schema.migration_sql(url, downgrade_to, current=current, downgrade=True, **timeouts).rstrip("\n")
    notice(f"SQL to migrate {state.config().database.display()} from {current or 'the base'} to {revision}")
    return schema.migration_sql(url, revision, current=current, **timeouts).rstrip("\n")


@app.command("downgrade", context_settings={"ignore_unknown_options": True})
def downgrade_command(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, `base`, or -N for N steps back.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it; touches nothing.")] = False,
) -> None:
    """Revert the schema to an earlier revision (data in dropped tables is lost).

    Example: itemctl db downgrade -1 --yes
    """
    from itemctl.services import schema

    state = ctx.obj
    if sql:
        with database_errors(state):
            target = schema.resolve_downgrade_target(state.engine(), revision)
        echo_data(_review_sql(state, revision, downgrade_to=target, lock_timeout=schema.DEFAULT_LOCK_TIMEOUT))
        return
    ask = must_ask(yes=yes, what="downgrade")
    with database_errors(state):
        engine = state.engine()
        target = schema.resolve_downgrade_target(engine, revision)
        if ask:
            # A rehearsal, rolled back, says exactly what would go; no lock is held while
            # the person decides.
            preview = schema.downgrade(engine, revision=target, dry_run=True)
            loses = ", ".join(preview.destructive) if preview.destructive else "drop no table or column"
            confirm(f"Downgrade the schema from {preview.before} to {target}? It would {loses}; their data is lost.")
        result = schema.downgrade(engine, revision=target, actor=state.config().user)
    notice(f"downgraded {result.before} -> {result.after or 'base'}")
    for operation in result.destructive:
        notice(f"destructive operation applied: {operation}")


class JsonOutput(str, Enum):
    json = "json"


JsonOption = Annotated[
    Optional[JsonOutput], typer.Option("--output", "-o", help="json: one object (a list for history) on stdout.")
]


def _state(revision: str | None, head: str) -> str:
    """Where a revision stands: empty, at head, behind (migrate), or newer (upgrade itemctl)."""
    from itemctl.services import schema

    if revision is None:
        return "empty"
    if revision == head:
        return "at head"
    return "newer" if schema.is_newer(revision) else "behind"


@app.command("current")
def current_command(ctx: typer.Context, output: JsonOption = None) -> None:
    """Print the database's schema revision (nothing when it was never migrated).

    Example: itemctl db current -o json
    """
    from itemctl.services import schema

    state = ctx.obj
    with database_errors(state):
        revision = None if state.absent() else schema.current(state.engine())
    head = schema.head_revision()
    where = _state(revision, head)
    if output is JsonOutput.json:
        echo_data(json.dumps({"revision": revision, "head": head, "state": where}), json=True)
        return
    if revision is not None:
        echo_data(revision)
    notice(
        {
            "empty": "the database has no itemctl schema (run `itemctl db migrate`)",
            "at head": "at head",
            "newer": f"newer than this itemctl (head {head}): upgrade itemctl",
            "behind": f"head is {head}: run `itemctl db migrate`",
        }[where]
    )


@app.command("history")
def history_command(ctx: typer.Context, output: JsonOption = None) -> None:
    """List every migration, newest first, marking head and current.

    Example: itemctl db history -o json
    """
    from itemctl.services import schema

    state = ctx.obj
    current = None
    try:
        with database_errors(state):
            current = None if state.absent() else schema.current(state.engine())
    except Exception as error:  # history is readable without a database
        notice(f"current revision unknown: {getattr(error, 'message', error)}")
    revisions = schema.list_revisions(current)
    if output is JsonOutput.json:
        echo_data(
            json.dumps(
                [
                    {"revision": r.revision, "down_revision": r.down_revision, "message": r.message,
                     "head": r.is_head, "current": r.is_current}
                    for r in revisions
                ]
            ),
            json=True,
        )
        return
    for rev in revisions:
        marks = [m for m, on in (("head", rev.is_head), ("current", rev.is_current)) if on]
        label = f" ({', '.join(marks)})" if marks else ""
        echo_data(f"{rev.down_revision or '<base>'} -> {rev.revision}{label}: {rev.message}")


@app.command("check")
def check_command(ctx: typer.Context, output: JsonOption = None) -> None:
    """Exit 0 when the database is at head and the models match the migrations, else 8.

    With -o json the verdict is also printed as one object on stdout; a failure's exit
    code stays, and its error is then a JSON object on stderr too.

    Example: itemctl db check && deploy
    """
    from itemctl.core.errors import SchemaError
    from itemctl.services import schema

    state = ctx.obj
    with database_errors(state):
        result = schema.CheckResult(None, schema.head_revision(), []) if state.absent() else schema.check(state.engine())
    where = f"database {state.config().database.display()}"
    problem = None
    hint = None
    if schema.is_newer(result.current):
        problem = f"{where} is at revision {result.current}, newer than this itemctl (head {result.head})"
        hint = "upgrade itemctl"
    elif result.current != result.head:
        problem = f"pending migrations: {where} is at {result.current or 'no revision'}, head is {result.head}"
        hint = "run `itemctl db migrate`"
    elif result.differences:
        problem = f"the models differ from the migrations in {where}: " + "; ".join(result.differences)
        hint = "write a migration for the model change"
    if output is JsonOutput.json:
        echo_data(
            json.dumps(
                {
                    "database": state.config().database.display(),
                    "revision": result.current,
                    "head": result.head,
                    "state": _state(result.current, result.head),
                    "differences": result.differences,
                    "ok": problem is None,
                }
            ),
            json=True,
        )
    if problem is not None:
        raise SchemaError(problem, hint=hint)
    notice(f"ok: {where} is at head ({result.head}) and matches the models")


@app.command("dump")
def dump_command(
    ctx: typer.Context,
    file: Annotated[
        Optional[str],
        typer.Option("--file", metavar="PATH", help="Write here (atomically) instead of stdout; a name ending in .gz is compressed."),
    ] = None,
) -> None:
    """Write the whole database (users, tags, items with ids and times) as JSON lines.

    The same data dumps to the same bytes from SQLite and PostgreSQL; `db restore`
    loads it into an empty database of either kind. The last line is a trailer counting
    the records, so a dump cut short never restores. The audit trail is not included.
    A progress bar is drawn on stderr when it is a terminal (not with -q).

    Example: itemctl db dump --file backup.jsonl.gz
    """
    from contextlib import ExitStack

    from itemctl.cli.progress import import_progress
    from itemctl.core import sink
    from itemctl.core.files import atomic_output
    from itemctl.services import dump

    state = ctx.obj
    with ExitStack() as stack:
        if file is None:
            out = sink.stdout()
        else:
            # Contexts exit in reverse: the transaction ends before the file is renamed.
            out = stack.enter_context(atomic_output(file, option="--file", reads=state.config().database.files()))
        text = stack.enter_context(sink.text_lines(out))
        # The data is its own progress when it scrolls past on the terminal.
        on_progress, _ = stack.enter_context(
            import_progress(enabled=not out.terminal, stream=None, total_bytes=None, title="dumping")
        )
        session, _ = stack.enter_context(command_session(state, actor=False, writes=False))
        counts = dump.dump(session=session, out=text, on_progress=on_progress)
    notice(
        f"dumped {counts['user']} user(s), {counts['tag']} tag(s), {counts['item']} item(s)"
        + (f" to {file}" if file else "")
    )


@app.command("restore")
def restore_command(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE|-", help="A file written by `db dump` (.gz: compressed); - for stdin.")],
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Load a dump into an empty database at head, in one transaction: all of it, or none.

    Every record is validated as import validates; ids and timestamps are kept. A dump
    whose trailer is missing or does not match (cut short) restores nothing.

    Example: itemctl --database-url postgresql://app@db/new db restore backup.jsonl.gz
    """
    from contextlib import ExitStack

    from itemctl.cli.inputs import open_input
    from itemctl.cli.progress import import_progress
    from itemctl.services import bulk, dump

    state = ctx.obj
    stream, size = open_input(file)
    with ExitStack() as stack:
        if file != "-":
            stack.callback(stream.close)
        on_progress, _ = stack.enter_context(
            import_progress(enabled=not no_progress, stream=stream, total_bytes=size, title="restoring")
        )
        session, _ = stack.enter_context(command_session(state, actor=False))
        summary = dump.restore(
            session=session,
            stream=bulk.decompressed(stream, file),
            actor=state.config().user,
            on_progress=on_progress,
            on_notice=notice,
        )
    counts = summary.counts
    notice(f"restored {counts['user']} user(s), {counts['tag']} tag(s), {counts['item']} item(s)")


@app.command("grants")
def grants_command(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(metavar="ROLE", help="The application role to grant (it must exist).")],
    apply: Annotated[bool, typer.Option("--apply", help="Run the statements (one transaction) instead of printing them.")] = False,
) -> None:
    """Print the SQL that gives an application role what everyday commands need (PostgreSQL).

    USAGE on the schema, CONNECT and TEMPORARY on the database (imports stage in temporary
    tables), SELECT/INSERT/UPDATE/DELETE on users, items, tags and links, SELECT/INSERT on
    the audit trail (append-only), SELECT on the schema revision, the sequences, and
    default privileges for tables a later migration creates. Run it as the role that
    migrates. No DDL: `db migrate` as that role is refused (exit 5).

    \b
    Example: itemctl db grants app_rw | psql "$ADMIN_URL"
    Example: itemctl db grants app_rw --apply
    """
    from itemctl.core.errors import DatabaseUnavailable, NotFoundError
    from itemctl.core.db import reader
    from itemctl.services import grants

    state = ctx.obj
    if not state.config().database.is_postgres:
        raise DatabaseUnavailable("db grants is for PostgreSQL: SQLite has no roles", hint="point --database-url at the PostgreSQL database")
    with database_errors(state):
        engine = state.engine()
        with reader(engine) as connection:
            if not grants.role_exists(connection, role):
                quoted = '"' + role.replace('"', '""') + '"'
                raise NotFoundError(f"no role {role!r} on this server", hint=f"create it first: CREATE ROLE {quoted} LOGIN PASSWORD '…'")
            if apply:
                grants.require_owner(connection, to="grant on itemctl's tables")
            statements = grants.grant_statements(connection, role)
        if not apply:
            echo_data("\n".join(statements))
            return
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    notice(f"granted role {role!r} what everyday commands need ({len(statements)} statements)")
