"""Schema migrations: Alembic driven on our own connection, under an advisory lock.

``itemctl db migrate`` takes ``pg_advisory_xact_lock`` inside the very transaction that
applies the migrations. Concurrent runs wait for it and then find nothing to do; the lock
is released by COMMIT or ROLLBACK, so it dies with its holder (a killed process's
connection is rolled back by the server) and, being transaction-scoped, it works behind
PgBouncer in transaction mode where a session-level lock would not.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, exc, text

from itemctl.core.db import is_unreachable
from itemctl.core.errors import SchemaError
from itemctl.core.logging import notice
from itemctl.models import SCHEMA_HEAD

# "itemctl!" as a big-endian 64-bit integer: the key of the migration advisory lock.
MIGRATION_LOCK_KEY = int.from_bytes(b"itemctl!", "big")
LOCK_RETRIES = 3
MIGRATE_HINT = "run `itemctl db migrate`"


def migrations_dir() -> Path:
    """Inside an installed wheel the scripts sit in the package; in a checkout beside it.

    ``ITEMCTL_MIGRATIONS_DIR`` points elsewhere: for trying migration scripts under
    development (and for the tests' deliberately slow or destructive revisions).
    """
    override = os.environ.get("ITEMCTL_MIGRATIONS_DIR")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent.parent
    shipped = package / "migrations"
    return shipped if shipped.is_dir() else package.parent / "migrations"


def alembic_config(*, connection: Connection | None = None, url: str | None = None, buffer=None):
    from alembic.config import Config

    cfg = Config(output_buffer=buffer)
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = connection
    cfg.attributes["url"] = url
    return cfg


def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    return _script().get_current_head()


# -- the cheap check every other command makes -------------------------------------------


def schema_revision(connection: Connection) -> str | None:
    """The database's revision, or None when it has never been migrated.

    One plain query. On PostgreSQL a missing table aborts the surrounding transaction, so
    call this only where that ends the command anyway (or on a connection of its own).
    """
    try:
        row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    except (exc.ProgrammingError, exc.OperationalError) as error:
        if _is_missing_table(error):
            return None
        raise
    return row[0] if row else None


def _is_missing_table(error: exc.DBAPIError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None)
    return sqlstate == "42P01" or "no such table" in str(error.orig)


def _revision_in_transaction(connection: Connection) -> str | None:
    """Like schema_revision, but safe inside a transaction that must go on."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def require_head(connection: Connection) -> None:
    """Raise SchemaError unless the database is at the revision these models describe."""
    current = schema_revision(connection)
    if current == SCHEMA_HEAD:
        return
    if current is None:
        raise SchemaError("the database has no itemctl schema", hint=MIGRATE_HINT)
    raise SchemaError(
        f"the database schema is at revision {current}, this itemctl needs {SCHEMA_HEAD}",
        hint=MIGRATE_HINT,
    )


# -- db migrate ------------------------------------------------------------------------


@dataclass
class MigrationResult:
    before: str | None
    after: str | None
    applied: list[str] = field(default_factory=list)
    destructive: list[str] = field(default_factory=list)


class _Guard:
    """What the current run allows, read by the drop-table/drop-column implementations.

    Outside ``destructive_policy`` everything is allowed (and recorded nowhere), so plain
    Alembic use in the same process, such as a downgrade, is not affected.
    """

    allow_destructive = True
    seen: list[str] = []
    installed = False


@contextmanager
def destructive_policy(*, allow: bool) -> Iterator[list[str]]:
    """Refuse (or allow and record) drops of tables and columns for the block."""
    _install_destructive_guard()
    _Guard.allow_destructive, _Guard.seen = allow, []
    try:
        yield _Guard.seen
    finally:
        _Guard.allow_destructive, _Guard.seen = True, []


def _install_destructive_guard() -> None:
    """Route Alembic's drop_table / drop_column through a check of the run's policy.

    This looks at the operations a revision invokes (plain and batch mode), not at its
    text; a refused drop raises before anything is executed, and the surrounding
    transaction rolls back whatever the run had already done.
    """
    if _Guard.installed:
        return
    from alembic.operations import Operations, ops, toimpl

    def guarded(kind, describe, implementation):
        def run(operations, operation, **kw):
            what = describe(operation)
            if not _Guard.allow_destructive:
                raise SchemaError(
                    f"migration refused: it would {kind} {what}",
                    hint="review it, then rerun with --allow-destructive",
                )
            _Guard.seen.append(f"{kind} {what}")
            return implementation(operations, operation, **kw)

        return run

    Operations.implementation_for(ops.DropTableOp, replace=True)(
        guarded("drop table", lambda o: o.table_name, toimpl.drop_table)
    )
    Operations.implementation_for(ops.DropColumnOp, replace=True)(
        guarded("drop column", lambda o: f"{o.table_name}.{o.column_name}", toimpl.drop_column)
    )
    _Guard.installed = True


def _lock_and_limit(connection: Connection, lock_timeout: float, statement_timeout: float = 0) -> None:
    """Take the migration lock, then bound every later statement of the transaction.

    All settings are SET LOCAL: they end with the transaction, as PgBouncer's
    transaction mode requires.
    """
    if connection.dialect.name != "postgresql":
        return
    if connection.dialect.server_version_info >= (14,):
        # A killed client's backend notices within a second and rolls back, releasing
        # the lock, even in the middle of a long statement.
        connection.exec_driver_sql("SET LOCAL client_connection_check_interval = '1s'")
    # Wait as long as it takes for another migrator (it will finish), but never queue
    # behind an application's lock for longer than lock_timeout.
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms'")
    if statement_timeout:
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = '{int(statement_timeout * 1000)}ms'")


def _first_line(error: exc.DBAPIError) -> str:
    return str(error.orig).strip().splitlines()[0] if error.orig else str(error)


def _statement(error: exc.DBAPIError) -> str:
    statement = " ".join((error.statement or "").split())
    return statement if len(statement) <= 80 else statement[:77] + "..."


def _is_lock_timeout(error: exc.DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == "55P03"


def migrate(
    engine: Engine,
    *,
    revision: str = "head",
    allow_destructive: bool = False,
    lock_timeout: float = 5.0,
    statement_timeout: float = 0,
    actor: str | None = None,
) -> MigrationResult:
    """Upgrade to ``revision`` in one transaction; retry a few times on lock timeouts.

    Destructive operations that were allowed are recorded in the audit trail (when the
    schema has one) in the same transaction, under ``actor`` if given.
    """
    from alembic import command

    attempt = 0
    while True:
        try:
            with (
                destructive_policy(allow=allow_destructive) as destructive,
                engine.connect() as connection,
                connection.begin(),
            ):
                _lock_and_limit(connection, lock_timeout, statement_timeout)
                before = _revision_in_transaction(connection)
                command.upgrade(alembic_config(connection=connection), revision)
                after = _revision_in_transaction(connection)
                applied_drops = list(destructive)
                if applied_drops:
                    _audit_destructive(connection, actor, before, after, applied_drops)
            return MigrationResult(before, after, _applied_between(before, after), applied_drops)
        except exc.DBAPIError as error:
            if is_unreachable(error):
                raise
            if not _is_lock_timeout(error):
                raise SchemaError(
                    f"migration failed, the schema is unchanged: {_first_line(error)}",
                    hint="fix the migration or the database, then run `itemctl db migrate` again",
                ) from error
            attempt += 1
            if attempt > LOCK_RETRIES:
                raise SchemaError(
                    f"migration gave up after {attempt} tries: a lock was held longer than "
                    f"lock_timeout ({lock_timeout:g} s) for `{_statement(error)}`; the schema is unchanged",
                    hint="find the long transaction in pg_stat_activity, or raise --lock-timeout",
                ) from error
            notice(f"waiting for a lock timed out; retrying ({attempt}/{LOCK_RETRIES})")
            time.sleep(min(2**attempt * 0.25, 2))


def _audit_destructive(connection: Connection, actor, before, after, operations: list[str]) -> None:
    from sqlalchemy import inspect

    from itemctl.models import AuditEntry
    from itemctl.models.base import utcnow

    if not inspect(connection).has_table("audit_log"):
        return
    role = connection.exec_driver_sql("SELECT session_user").scalar() if connection.dialect.name == "postgresql" else None
    connection.execute(
        AuditEntry.__table__.insert().values(
            at=utcnow(),
            actor=actor,
            db_role=role,
            action="db.migrate",
            target=after,
            details={"from": before, "to": after, "destructive": operations},
        )
    )


def _applied_between(before: str | None, after: str | None) -> list[str]:
    if before == after:
        return []
    script = _script()
    revisions = script.iterate_revisions(after, before)
    return [rev.revision for rev in reversed(list(revisions))]


def migration_sql(url: str, revision: str = "head") -> str:
    """The SQL a migration would run (offline mode): no database is touched."""
    from alembic import command

    buffer = io.StringIO()
    command.upgrade(alembic_config(url=url, buffer=buffer), revision, sql=True)
    return buffer.getvalue()


# -- db downgrade / current / history / check --------------------------------------------


def downgrade(engine: Engine, *, revision: str) -> MigrationResult:
    from alembic import command

    with engine.connect() as connection, connection.begin():
        _lock_and_limit(connection, 5.0)
        before = _revision_in_transaction(connection)
        command.downgrade(alembic_config(connection=connection), revision)
        after = _revision_in_transaction(connection)
    return MigrationResult(before, after)


def resolve_downgrade_target(engine: Engine, target: str) -> str:
    """``-N`` means N revisions below the current one; anything else goes to Alembic."""
    if not target.startswith("-"):
        return target
    with engine.connect() as connection:
        current = schema_revision(connection)
    if current is None:
        raise SchemaError("the database has no itemctl schema; nothing to downgrade")
    return f"{current}{target}"


@dataclass
class Revision:
    revision: str
    down_revision: str | None
    message: str
    is_head: bool
    is_current: bool = False


def history(current: str | None = None) -> list[Revision]:
    """Every revision, newest first."""
    script = _script()
    heads = set(script.get_heads())
    return [
        Revision(
            rev.revision,
            rev.down_revision if isinstance(rev.down_revision, str) else None,
            rev.doc or "",
            rev.revision in heads,
            rev.revision == current,
        )
        for rev in script.walk_revisions()
    ]


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return schema_revision(connection)


@dataclass
class CheckResult:
    current: str | None
    head: str
    differences: list[str]

    @property
    def ok(self) -> bool:
        return self.current == self.head and not self.differences


def check(engine: Engine) -> CheckResult:
    """Is the database at head, and do the models match what the migrations built?"""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    head = head_revision()
    with engine.connect() as connection:
        current_rev = schema_revision(connection)
        differences: list[str] = []
        if current_rev == head:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            with warnings.catch_warnings():
                # SQLite cannot reflect the expression index on lower(tag.name); that
                # index is compared on PostgreSQL, the product's target.
                warnings.filterwarnings("ignore", message=".*expression-based index")
                diffs = compare_metadata(context, SQLModel.metadata)
            differences = [_describe(diff) for diff in diffs]
    return CheckResult(current_rev, head, differences)


def _describe(diff) -> str:
    """One autogenerate difference in words: what, where, and which side has it."""
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe(d) for d in diff)
    kind = diff[0]
    if kind in ("add_column", "remove_column"):
        where = f"column {diff[2]}.{diff[3].name}"
    elif kind.startswith("modify_"):
        where = f"column {diff[2]}.{diff[3]}"
    else:
        obj = diff[1]
        table = getattr(getattr(obj, "table", None), "name", None)
        name = getattr(obj, "name", None) or str(obj)
        where = f"{kind.split('_', 1)[1]} {table + '.' if table and table != name else ''}{name}"
    side = {
        "add": "in the models, not in the database",
        "remove": "in the database, not in the models",
        "modify": "differs",
    }[kind.split("_", 1)[0]]
    return f"{where} {side}"
