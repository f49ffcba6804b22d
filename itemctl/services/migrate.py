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
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, exc, text

from itemctl.core.errors import (
    ConflictError,
    ItemctlError,
    classify,
    SchemaError,
    is_unreachable,
    primary_message,
    sqlstate_of,
    LOCK_NOT_AVAILABLE,
    INSUFFICIENT_PRIVILEGE,
    QUERY_CANCELED,
    READ_ONLY,
)
from itemctl.core.db import lock_holders, reader, set_local_timeout
from itemctl.models import KNOWN_REVISIONS, SCHEMA_HEAD
from itemctl.services.common import Notify, quiet


# "itemctl!" as a big-endian 64-bit integer: the key of the migration advisory lock.
MIGRATION_LOCK_KEY = int.from_bytes(b"itemctl!", "big")
LOCK_RETRIES = 3
MIGRATE_HINT = "run `itemctl db migrate`"
UPGRADE_HINT = "upgrade itemctl"
DEFAULT_LOCK_TIMEOUT = 5.0
DEFAULT_WAIT = 600.0

# The statements of a run's transaction before its first migration, written once: run by
# _lock_and_limit, printed by run_preamble for --sql.
CHECK_CONNECTION = "SET LOCAL client_connection_check_interval = '1s'"
TRY_LOCK = f"SELECT pg_try_advisory_xact_lock({MIGRATION_LOCK_KEY})"
TAKE_LOCK = f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"


def run_limits(lock_timeout: float, statement_timeout: float = 0) -> list[str]:
    """The timeouts a run sets once it holds the lock (statement_timeout 0: no limit)."""
    limits = [set_local_timeout("lock_timeout", lock_timeout)]
    if statement_timeout:
        limits.append(set_local_timeout("statement_timeout", statement_timeout))
    return limits


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
    return sqlstate_of(error) == "42P01" or "no such table" in str(error.orig)


def newer_error(current: str, head: str = SCHEMA_HEAD) -> SchemaError:
    """A database migrated by a newer itemctl: named as such, never "run db migrate"."""
    return SchemaError(
        f"the database is at revision {current}, newer than this itemctl (head {head}); nothing was changed",
        hint=UPGRADE_HINT,
    )


def is_newer(current: str | None) -> bool:
    """True when the revision is not one of this itemctl's migrations (a newer one made it)."""
    return current is not None and current not in _known_revisions()


def _known_revisions() -> set[str]:
    if os.environ.get("ITEMCTL_MIGRATIONS_DIR"):  # other scripts: ask them
        return {rev.revision for rev in _script().walk_revisions()}
    return set(KNOWN_REVISIONS)


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
    if is_newer(current):
        raise newer_error(current)
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
    newer: bool = False  # the database is at a revision this itemctl does not know


# -- the destructive guard: judged by the effect, not the wording ----------------------------

# SQLite cannot reflect expression indexes (lower(tag.name), lower(user.email)): a batch
# rebuild and `db check` reflect tables, and the warning must not reach the user. Those
# indexes are compared on PostgreSQL, the product's target.
REFLECTION_WARNING = ".*expression-based index"


def schema_columns(connection: Connection) -> dict[str, set[str]]:
    """Every table of the schema and its columns, read from the catalog."""
    if connection.dialect.name == "postgresql":
        rows = connection.exec_driver_sql(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        ).all()
    else:
        tables = [
            name
            for (name,) in connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        ]
        rows = [(table, info[1]) for table in tables for info in connection.exec_driver_sql(f'PRAGMA table_info("{table}")')]
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    return columns


def _step(connection: Connection, alembic_command, revision: str) -> tuple[str | None, list[str]]:
    """Run Alembic's upgrade or downgrade on the connection; the revision reached and
    what was lost. The catalog is read before and after, inside the run's transaction: a
    drop made by op.drop_column, raw SQL or a batch rebuild that loses a column looks the
    same here, and the caller's refusal rolls back everything the run did."""
    columns_before = schema_columns(connection)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=REFLECTION_WARNING)
        alembic_command(alembic_config(connection=connection), revision)
    return _revision_in_transaction(connection), lost_between(columns_before, schema_columns(connection))


def lost_between(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    """The tables and columns that ``before`` had and ``after`` lacks, in words."""
    lost = []
    for table in sorted(before):
        if table == "alembic_version":
            continue
        if table not in after:
            lost.append(f"drop table {table}")
        else:
            lost.extend(f"drop column {table}.{column}" for column in sorted(before[table] - after[table]))
    return lost


def _lock_and_limit(
    connection: Connection,
    lock_timeout: float,
    statement_timeout: float = 0,
    *,
    wait: float = DEFAULT_WAIT,
    on_notice: Notify = quiet,
) -> None:
    """Take the migration lock, then bound every later statement of the transaction.

    All settings are SET LOCAL: they end with the transaction, as PgBouncer's
    transaction mode requires.
    """
    if connection.dialect.name != "postgresql":
        return
    if connection.dialect.server_version_info >= (14,):
        # A killed client's backend notices within a second and rolls back, releasing
        # the lock, even in the middle of a long statement.
        connection.exec_driver_sql(CHECK_CONNECTION)
    _take_migration_lock(connection, wait, on_notice)
    # Never queue behind an application's lock for longer than lock_timeout.
    for statement in run_limits(lock_timeout, statement_timeout):
        connection.exec_driver_sql(statement)


def _take_migration_lock(connection: Connection, wait: float, on_notice: Notify) -> None:
    """The advisory lock: at once when free; else say who holds it and wait at most ``wait``."""
    if connection.exec_driver_sql(TRY_LOCK).scalar():
        return
    holder = _advisory_holder(connection)
    on_notice(f"waiting for another `itemctl db migrate` to finish ({holder}); at most {wait:g} s")
    # At least a millisecond: lock_timeout 0 would wait for ever.
    connection.exec_driver_sql(set_local_timeout("lock_timeout", max(wait, 0.001)))
    try:
        connection.exec_driver_sql(TAKE_LOCK)
    except exc.DBAPIError as error:
        if not _is_lock_timeout(error):
            raise
        raise ConflictError(
            f"gave up after {wait:g} s waiting for another `itemctl db migrate` ({holder}); nothing was changed",
            hint="let it finish, or raise --wait",
        ) from None


def _advisory_holder(connection: Connection) -> str:
    row = connection.execute(
        text(
            """
            SELECT a.pid, a.usename, a.application_name, extract(epoch FROM now() - a.xact_start)::int
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = :high AND l.objid = :low AND l.objsubid = 1
            LIMIT 1
            """
        ),
        {"high": MIGRATION_LOCK_KEY >> 32, "low": MIGRATION_LOCK_KEY & 0xFFFFFFFF},
    ).first()
    if row is None:
        return "holder unknown"
    pid, role, application, seconds = row
    running = "its time running is hidden: seeing it needs pg_read_all_stats" if seconds is None else f"running for {seconds} s"
    return f"pid {pid}, role {role}, application_name {application or '(none)'!r}, {running}"


def _is_lock_timeout(error: exc.DBAPIError) -> bool:
    return sqlstate_of(error) == LOCK_NOT_AVAILABLE


def migrate(
    engine: Engine,
    *,
    revision: str = "head",
    allow_destructive: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    statement_timeout: float = 0,
    wait: float = DEFAULT_WAIT,
    actor: str | None = None,
    on_notice: Notify = quiet,
) -> MigrationResult:
    """Upgrade to ``revision`` in one transaction; retry a few times on lock timeouts.

    Destructive operations that were allowed are recorded in the audit trail (when the
    schema has one) in the same transaction, under ``actor`` if given. A database at a
    revision this itemctl does not know is left alone (``newer`` in the result).
    """
    from alembic import command

    attempt = 0
    while True:
        try:
            with engine.connect() as connection, connection.begin():
                _lock_and_limit(connection, lock_timeout, statement_timeout, wait=wait, on_notice=on_notice)
                before = _revision_in_transaction(connection)
                if is_newer(before):
                    return MigrationResult(before, before, newer=True)
                after, drops = _step(connection, command.upgrade, revision)
                if drops and not allow_destructive:
                    raise SchemaError(
                        f"migration refused: it would {', '.join(drops)}; the schema is unchanged",
                        hint="review it, then rerun with --allow-destructive",
                    )
                if drops:
                    _audit(connection, "db.migrate", actor, before, after, drops)
            return MigrationResult(before, after, _applied_between(before, after), drops)
        except exc.DBAPIError as error:
            if is_unreachable(error) or sqlstate_of(error) in (READ_ONLY, QUERY_CANCELED, INSUFFICIENT_PRIVILEGE):
                raise  # not the migration's fault: classified like any command's (42501: exit 5)
            if not _is_lock_timeout(error):
                raise SchemaError(
                    f"migration failed, the schema is unchanged: {primary_message(error)}",
                    hint="fix the migration or the database, then run `itemctl db migrate` again",
                ) from error
            attempt += 1
            if attempt > LOCK_RETRIES:
                holder = lock_holders(engine)
                raise SchemaError(
                    f"migration gave up after {attempt} tries: a lock was held longer than "
                    f"lock_timeout ({lock_timeout:g} s){' by ' + holder if holder else ''}; the schema is unchanged",
                    hint="end that transaction, or raise --lock-timeout",
                ) from error
            on_notice(f"waiting for a lock timed out; retrying ({attempt}/{LOCK_RETRIES})")
            time.sleep(min(2**attempt * 0.25, 2))
        except (ItemctlError, KeyboardInterrupt):
            raise
        except Exception as error:
            if classify(error) is not None:  # an unknown revision and such: classified as usual
                raise
            # A revision that raised (a data check, a bug in the script): rolled back whole.
            raise SchemaError(
                f"migration failed, the schema is unchanged: {primary_message(error)}",
                hint="fix the migration or the data it names, then run `itemctl db migrate` again",
            ) from error


def _audit(connection: Connection, action: str, actor, before, after, operations: list[str]) -> None:
    """Record a schema change that lost tables or columns, when the audit table exists."""
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
            action=action,
            target=after or "base",
            details={"from": before, "to": after, "destructive": operations},
        )
    )


def _applied_between(before: str | None, after: str | None) -> list[str]:
    if before == after:
        return []
    script = _script()
    revisions = script.iterate_revisions(after, before)
    return [rev.revision for rev in reversed(list(revisions))]


def run_preamble(dialect: str, lock_timeout: float, statement_timeout: float = 0) -> list[str]:
    """The statements a real run issues first in its transaction (PostgreSQL only)."""
    if dialect != "postgresql":
        return []
    return [CHECK_CONNECTION, TAKE_LOCK, *run_limits(lock_timeout, statement_timeout)]


def migration_sql(
    url: str,
    revision: str = "head",
    *,
    current: str | None = None,
    downgrade: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    statement_timeout: float = 0,
) -> str:
    """The SQL ``db migrate`` (or ``db downgrade``) would run from ``current`` (None: the
    base), with the lock and timeout statements of a real run (offline: nothing is run)."""
    from alembic import command

    buffer = io.StringIO()
    config = alembic_config(url=url, buffer=buffer)
    config.attributes["preamble"] = run_preamble(url.split(":", 1)[0].split("+", 1)[0], lock_timeout, statement_timeout)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=REFLECTION_WARNING)
        if downgrade:
            command.downgrade(config, f"{current}:{revision}", sql=True)
        else:
            command.upgrade(config, f"{current}:{revision}" if current else revision, sql=True)
    return buffer.getvalue()


# -- db downgrade / current / history / check --------------------------------------------


def downgrade(engine: Engine, *, revision: str, actor: str | None = None, dry_run: bool = False) -> MigrationResult:
    """Downgrade to ``revision`` in one transaction, recording it in the audit trail (when
    the audit table survives). ``dry_run`` runs it and rolls back: what it would drop is
    in ``destructive``, for the confirmation question."""
    from alembic import command

    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            _lock_and_limit(connection, DEFAULT_LOCK_TIMEOUT)
            before = _revision_in_transaction(connection)
            if is_newer(before):
                raise newer_error(before, head_revision())
            after, drops = _step(connection, command.downgrade, revision)
            if dry_run:
                transaction.rollback()
            else:
                _audit(connection, "db.downgrade", actor, before, after, drops)
                transaction.commit()
        except BaseException:
            if transaction.is_active:
                transaction.rollback()
            raise
    return MigrationResult(before, after, destructive=drops)


def history_order() -> list[str]:
    """Every revision id, from the base to head."""
    return [rev.revision for rev in reversed(list(_script().walk_revisions()))]


def resolve_downgrade_target(engine: Engine, target: str) -> str:
    """The revision to downgrade to: ``-N`` steps back, ``base``, or a revision below the
    database's own; anything else (past the base, head, a revision above) is exit 8."""
    with reader(engine) as connection:
        current = schema_revision(connection)
    if current is None:
        raise SchemaError("the database has no itemctl schema; nothing to downgrade")
    if is_newer(current):
        raise newer_error(current, head_revision())
    script = _script()
    order = history_order()
    position = order.index(current)
    if target.startswith("-"):
        steps = target[1:]
        if not steps.isdigit() or int(steps) == 0:
            raise SchemaError(f"invalid relative revision {target!r}: give -N with N at least 1")
        if int(steps) > position + 1:
            raise SchemaError(
                f"cannot go {steps} revisions back from {current}: the database is {position + 1} above the base",
                hint="`itemctl db downgrade base` removes every revision",
            )
        return order[position - int(steps)] if int(steps) <= position else "base"
    if target == "base":
        return target
    try:
        revision = script.get_revision(target)
    except Exception:  # alembic's CommandError / ResolutionError: not one of ours
        revision = None
    if revision is None:
        raise SchemaError(
            f"unknown revision {target!r}", hint="see `itemctl db history` for the revisions this itemctl knows"
        )
    if order.index(revision.revision) >= position:
        raise SchemaError(
            f"cannot downgrade to {target} ({revision.revision}): it is not below the database's revision {current}",
            hint="see `itemctl db history`",
        )
    return revision.revision


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
    with reader(engine) as connection:
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
    with reader(engine) as connection:
        current_rev = schema_revision(connection)
        differences: list[str] = []
        if current_rev == head:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=REFLECTION_WARNING)
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
