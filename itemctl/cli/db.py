"""``itemctl db``: migrate, downgrade and inspect the schema."""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

from typing import Annotated, Optional

import typer

from itemctl.cli.output import confirm, echo_data, must_ask
from itemctl.cli.runtime import database_errors
from itemctl.core.logging import notice

app = typer.Typer(help="Migrate and inspect the database schema.", no_args_is_help=True)


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
    from itemctl.services import migrate

    state = ctx.obj
    if sql:
        echo_data(migrate.migration_sql(state.config().database.url, revision).rstrip("\n"))
        return
    if lock_timeout is None:
        lock_timeout = state.lock_timeout if state.lock_timeout is not None else migrate.DEFAULT_LOCK_TIMEOUT
    with database_errors(state):
        result = migrate.migrate(
            state.engine(),
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
            f"newer than this itemctl (head {migrate.head_revision()}); nothing was changed"
        )
    elif result.applied:
        notice(f"migrated {where}: {result.before or 'empty'} -> {result.after}, applied {', '.join(result.applied)}")
        for operation in result.destructive:
            notice(f"destructive operation applied: {operation}")
    else:
        notice(f"nothing to migrate: {where} is at {result.after}")


@app.command("downgrade", context_settings={"ignore_unknown_options": True})
def downgrade_command(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, `base`, or -N for N steps back.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Revert the schema to an earlier revision (data in dropped tables is lost).

    Example: itemctl db downgrade -1 --yes
    """
    from itemctl.services import migrate

    state = ctx.obj
    ask = must_ask(yes=yes, what="downgrade")
    with database_errors(state):
        engine = state.engine()
        target = migrate.resolve_downgrade_target(engine, revision)
        if ask:
            confirm(f"Downgrade the schema to {target}? Data in dropped tables is lost.")
        result = migrate.downgrade(engine, revision=target)
    notice(f"downgraded {result.before} -> {result.after or 'base'}")


@app.command("current")
def current_command(ctx: typer.Context) -> None:
    """Print the database's schema revision (nothing when it was never migrated).

    Example: itemctl db current
    """
    from itemctl.models import SCHEMA_HEAD
    from itemctl.services import migrate

    state = ctx.obj
    with database_errors(state):
        revision = migrate.current(state.engine())
    if revision is None:
        notice("the database has no itemctl schema (run `itemctl db migrate`)")
        return
    echo_data(revision)
    if revision == SCHEMA_HEAD:
        notice("at head")
    elif migrate.is_newer(revision):
        notice(f"newer than this itemctl (head {SCHEMA_HEAD}): upgrade itemctl")
    else:
        notice(f"head is {SCHEMA_HEAD}: run `itemctl db migrate`")


@app.command("history")
def history_command(ctx: typer.Context) -> None:
    """List every migration, newest first, marking head and current.

    Example: itemctl db history
    """
    from itemctl.services import migrate

    state = ctx.obj
    current = None
    try:
        with database_errors(state):
            current = migrate.current(state.engine())
    except Exception as error:  # history is readable without a database
        notice(f"current revision unknown: {getattr(error, 'message', error)}")
    for rev in migrate.history(current):
        marks = [m for m, on in (("head", rev.is_head), ("current", rev.is_current)) if on]
        label = f" ({', '.join(marks)})" if marks else ""
        echo_data(f"{rev.down_revision or '<base>'} -> {rev.revision}{label}: {rev.message}")


@app.command("check")
def check_command(ctx: typer.Context) -> None:
    """Exit 0 when the database is at head and the models match the migrations, else 8.

    Example: itemctl db check && deploy
    """
    from itemctl.core.errors import SchemaError
    from itemctl.services import migrate

    state = ctx.obj
    with database_errors(state):
        result = migrate.check(state.engine())
    where = f"database {state.config().database.display()}"
    if migrate.is_newer(result.current):
        raise SchemaError(
            f"{where} is at revision {result.current}, newer than this itemctl (head {result.head})",
            hint="upgrade itemctl",
        )
    if result.current != result.head:
        raise SchemaError(
            f"pending migrations: {where} is at {result.current or 'no revision'}, head is {result.head}",
            hint="run `itemctl db migrate`",
        )
    if result.differences:
        raise SchemaError(
            f"the models differ from the migrations in {where}: " + "; ".join(result.differences),
            hint="write a migration for the model change",
        )
    notice(f"ok: {where} is at head ({result.head}) and matches the models")
