"""The database schema: Alembic's migrations run on our own connection, under a lock.

One module per idea; imports point one way, from the runs down to what they stand on:

    head      which revision is which: the scripts, their head, the database's revision,
              and ``require_head``, the cheap check every command makes (no Alembic)
    lock      the advisory migration lock, who holds it, and the lock and timeout
              statements a run issues first (run here, printed by ``offline``)
    guard     the destructive guard: the catalog compared before and after a run
    runner    ``db migrate`` and ``db downgrade`` runs and their audit  -> head, lock, guard
    offline   ``--sql``: the SQL a run would execute                     -> head, lock
    history   ``db history`` and ``db check``                            -> head

Alembic is imported inside the functions that need it, never by importing this package.
"""

from itemctl.services.schema.head import (
    current,
    head_revision,
    history_order,
    is_newer,
    newer_error,
    require_head,
    schema_revision,
)
from itemctl.services.schema.history import CheckResult, Revision, check, list_revisions
from itemctl.services.schema.lock import DEFAULT_LOCK_TIMEOUT
from itemctl.services.schema.offline import migration_sql
from itemctl.services.schema.runner import MigrationResult, downgrade, migrate, resolve_downgrade_target

__all__ = [
    "CheckResult",
    "DEFAULT_LOCK_TIMEOUT",
    "MigrationResult",
    "Revision",
    "check",
    "current",
    "downgrade",
    "head_revision",
    "history_order",
    "is_newer",
    "list_revisions",
    "migrate",
    "migration_sql",
    "newer_error",
    "require_head",
    "resolve_downgrade_target",
    "schema_revision",
]
