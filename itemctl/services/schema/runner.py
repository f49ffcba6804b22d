"""Migrate and downgrade runs: one transaction each, under the migration lock, guarded.

A run takes the lock (``lock``), applies Alembic's upgrade or downgrade on its own
connection, compares the catalog before and after (``guard``), and records what was lost
in the audit trail, all in the one transaction it commits or rolls back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, exc

from itemctl.core.db import lock_holders, reader
from itemctl.core.errors import (
    INSUFFICIENT_PRIVILEGE,
    QUERY_CANCELED,
    READ_ONLY,
    DatabaseUnavailable,
    ItemctlError,
    LockTimeout,
    SchemaError,
    classify,
    is_unreachable,
    primary_message,
    sqlstate_of,
)
from itemctl.services.common import Notify, quiet
from itemctl.services.schema.guard import lost_between, refusal, schema_columns
from itemctl.services.schema.head import (
    alembic_config,
    alembic_quietly,
    current,
    head_revision,
    history_order,
    is_newer,
    newer_error,
    revision_in_transaction,
    schema_revision,
    script_directory,
)
from itemctl.services.schema.lock import DEFAULT_LOCK_TIMEOUT, DEFAULT_WAIT, is_lock_timeout, lock_and_limit

LOCK_RETRIES = 3


@dataclass
class MigrationResult:
    before: str | None
    after: str | None
    applied: list[str] = field(default_factory=list)
    destructive: list[str] = field(default_factory=list)
    newer: bool = False  # the database is at a revision this itemctl does not know


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

    sqlite = engine.dialect.name == "sqlite"
    if sqlite and (done := _nothing_to_do(engine, revision)) is not None:
        return done
    attempt = 0
    while True:
        try:
            with engine.connect() as connection, _busy_timeout(connection, lock_timeout if sqlite else None), connection.begin():
                lock_and_limit(connection, lock_timeout, statement_timeout, wait=wait, on_notice=on_notice)
                before = revision_in_transaction(connection)
                if is_newer(before):
                    return MigrationResult(before, before, newer=True)
                after, drops = _step(connection, command.upgrade, revision)
                if drops and not allow_destructive:
                    raise refusal(drops)
                if drops:
                    _audit(connection, "db.migrate", actor, before, after, drops)
            return MigrationResult(before, after, _applied_between(before, after), drops)
        except exc.DBAPIError as error:
            _raise_unless_retryable(error, sqlite=sqlite, lock_timeout=lock_timeout)
            attempt += 1
            if attempt > LOCK_RETRIES:
                holder = lock_holders(engine)
                raise SchemaError(
                    f"migration gave up after {attempt} tries: a lock was held longer than "
                    f"lock_timeout ({lock_timeout:g} s){' by ' + holder if holder else ''}; the schema is unchanged",
                    hint="end that transaction, or raise {lock_timeout}",
                    fields=("lock_timeout",),
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


def _nothing_to_do(engine: Engine, revision: str) -> MigrationResult | None:
    """SQLite: read first, as any reader, without the file's write lock; at head, or at a
    revision a newer itemctl made, there is nothing to wait for."""
    before = current(engine)
    if is_newer(before):
        return MigrationResult(before, before, newer=True)
    if revision == "head" and before == head_revision():
        return MigrationResult(before, before)
    return None


def _raise_unless_retryable(error: exc.DBAPIError, *, sqlite: bool, lock_timeout: float) -> None:
    """What a failed run says; it returns only for a lock timeout, which is tried again."""
    if is_unreachable(error) or sqlstate_of(error) in (READ_ONLY, QUERY_CANCELED, INSUFFICIENT_PRIVILEGE):
        raise error  # not the migration's fault: classified like any command's (42501: exit 5)
    classified = classify(error) if sqlite else None
    if isinstance(classified, DatabaseUnavailable):
        raise error  # a file SQLite cannot open or use: exit 7, as for any command
    if isinstance(classified, LockTimeout):
        raise LockTimeout(
            f"gave up after {lock_timeout:g} s waiting for the write lock another connection holds "
            "on the database file; the schema is unchanged",
            hint="let that command finish, or raise {lock_timeout}",
            fields=("lock_timeout",),
        ) from error
    if not is_lock_timeout(error):
        raise SchemaError(
            f"migration failed, the schema is unchanged: {primary_message(error)}",
            hint="fix the migration or the database, then run `itemctl db migrate` again",
        ) from error


@contextmanager
def _busy_timeout(connection: Connection, seconds: float | None) -> Iterator[None]:
    """On SQLite, how long BEGIN IMMEDIATE waits for the file's write lock: the run's
    lock timeout, set before the transaction begins and put back after it."""
    if seconds is None:
        yield
        return
    sqlite = connection.connection.driver_connection  # no statement yet: nothing begun
    previous = sqlite.execute("PRAGMA busy_timeout").fetchone()[0]
    sqlite.execute(f"PRAGMA busy_timeout = {max(int(seconds * 1000), 1)}")
    try:
        yield
    finally:
        sqlite.execute(f"PRAGMA busy_timeout = {int(previous)}")


def downgrade(engine: Engine, *, revision: str, actor: str | None = None, dry_run: bool = False) -> MigrationResult:
    """Downgrade to ``revision`` in one transaction, recording it in the audit trail (when
    the audit table survives). ``dry_run`` runs it and rolls back: what it would drop is
    in ``destructive``, for the confirmation question."""
    from alembic import command

    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            lock_and_limit(connection, DEFAULT_LOCK_TIMEOUT)
            before = revision_in_transaction(connection)
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


def resolve_downgrade_target(engine: Engine, target: str) -> str:
    """The revision to downgrade to: ``-N`` steps back, ``base``, or a revision below the
    database's own; anything else (past the base, head, a revision above) is exit 8."""
    with reader(engine) as connection:
        current = schema_revision(connection)
    if current is None:
        raise SchemaError("the database has no itemctl schema; nothing to downgrade")
    if is_newer(current):
        raise newer_error(current, head_revision())
    script = script_directory()
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


def _step(connection: Connection, alembic_command, revision: str) -> tuple[str | None, list[str]]:
    """Run Alembic's upgrade or downgrade on the connection: the revision reached, and
    what was lost (see ``guard``)."""
    columns_before = schema_columns(connection)
    with alembic_quietly():
        alembic_command(alembic_config(connection=connection), revision)
    return revision_in_transaction(connection), lost_between(columns_before, schema_columns(connection))


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
    revisions = script_directory().iterate_revisions(after, before)
    return [rev.revision for rev in reversed(list(revisions))]
