"""Which revision is which: the migration scripts, their head, and the database's revision.

The check every command makes (``require_head``) is one plain query compared with
``SCHEMA_HEAD`` and ``KNOWN_REVISIONS``: it never loads Alembic. Only the functions that
read the scripts themselves (``head_revision``, ``history_order``) import it, inside.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, exc

from itemctl.core.db import reader
from itemctl.core.errors import SchemaError, sqlstate_of
from itemctl.models import KNOWN_REVISIONS, SCHEMA_HEAD

MIGRATE_HINT = "run `itemctl db migrate`"
UPGRADE_HINT = "upgrade itemctl"

# SQLite cannot reflect expression indexes (lower(tag.name), lower(user.email)): a batch
# rebuild and `db check` reflect tables, and the warning must not reach the user. Those
# indexes are compared on PostgreSQL, the product's target.
REFLECTION_WARNING = ".*expression-based index"


# -- the scripts -----------------------------------------------------------------------------


def migrations_dir() -> Path:
    """Inside an installed wheel the scripts sit in the package; in a checkout beside it.

    ``ITEMCTL_MIGRATIONS_DIR`` points elsewhere: for trying migration scripts under
    development (and for the tests' deliberately slow or destructive revisions).
    """
    override = os.environ.get("ITEMCTL_MIGRATIONS_DIR")
    if override:
        return Path(override)
    package = Path(__file__).resolve().parents[2]
    shipped = package / "migrations"
    return shipped if shipped.is_dir() else package.parent / "migrations"


def alembic_config(*, connection: Connection | None = None, url: str | None = None, buffer=None):
    from alembic.config import Config

    cfg = Config(output_buffer=buffer)
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = connection
    cfg.attributes["url"] = url
    return cfg


@contextmanager
def alembic_quietly() -> Iterator[None]:
    """Run Alembic without the SQLite reflection warning (see ``REFLECTION_WARNING``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=REFLECTION_WARNING)
        yield


def script_directory():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    return script_directory().get_current_head()


def history_order() -> list[str]:
    """Every revision id, from the base to head."""
    return [rev.revision for rev in reversed(list(script_directory().walk_revisions()))]


def _known_revisions() -> set[str]:
    if os.environ.get("ITEMCTL_MIGRATIONS_DIR"):  # other scripts: ask them
        return set(history_order())
    return set(KNOWN_REVISIONS)


# -- the database's revision, and the cheap check every other command makes -------------------


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


def revision_in_transaction(connection: Connection) -> str | None:
    """Like schema_revision, but safe inside a transaction that must go on."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def current(engine: Engine) -> str | None:
    with reader(engine) as connection:
        return schema_revision(connection)


def newer_error(current: str, head: str = SCHEMA_HEAD) -> SchemaError:
    """A database migrated by a newer itemctl: named as such, never "run db migrate"."""
    return SchemaError(
        f"the database is at revision {current}, newer than this itemctl (head {head}); nothing was changed",
        hint=UPGRADE_HINT,
    )


def is_newer(current: str | None) -> bool:
    """True when the revision is not one of this itemctl's migrations (a newer one made it)."""
    return current is not None and current not in _known_revisions()


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
