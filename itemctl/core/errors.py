"""Errors that reach the user, each carrying its exit code from the contract.

Services raise these; ``itemctl.cli.main`` is the one place that prints them and exits.
"""

from __future__ import annotations

import re


class ItemctlError(Exception):
    """Base of every error the user is meant to see.

    A service names the inputs it speaks of by field (``limit``, ``created_after``), as
    ``{limit}`` in its message and hint, listed in ``fields``; the front end words them
    (the CLI as ``--limit``) through ``worded`` before printing. Unworded, a field reads
    as its own name.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fields = fields

    def worded(self, name_of) -> None:
        """Put each field's name, as this front end calls it, into the message and hint."""
        for field in self.fields:
            self.message = self.message.replace("{" + field + "}", name_of(field))
            if self.hint:
                self.hint = self.hint.replace("{" + field + "}", name_of(field))
        self.fields = ()


class UsageError(ItemctlError):
    """Bad command line, or a refused confirmation."""

    exit_code = 2


class NotFoundError(ItemctlError):
    """The item, user or tag does not exist."""

    exit_code = 3


class ConflictError(ItemctlError):
    """A duplicate, the last admin, or a concurrent change."""

    exit_code = 4


class TransientConflict(ConflictError):
    """A serialization failure or deadlock: rolled back, and worth running again."""


class PermissionDenied(ItemctlError):
    """The actor may not do this, or there is no actor."""

    exit_code = 5


class InvalidInput(ItemctlError):
    """A value or a file fails validation."""

    exit_code = 6


class DatabaseUnavailable(ItemctlError):
    """The database is unreachable, refused us, or is not configured."""

    exit_code = 7


class SchemaError(ItemctlError):
    """The schema is not migrated, has drifted, or a migration was refused or failed."""

    exit_code = 8


class Interrupted(ItemctlError):
    """Ctrl-C; the transaction was rolled back."""

    exit_code = 130


# The stable name of each exit code's kind of failure, for errors written as JSON
# (`{"error": {"code": 4, "kind": "conflict", …}}`): scripts branch on these.
KINDS = {
    1: "internal",
    2: "usage",
    3: "not_found",
    4: "conflict",
    5: "permission_denied",
    6: "invalid_input",
    7: "unavailable",
    8: "schema",
    130: "interrupted",
}


class LockTimeout(ConflictError):
    """A lock held by another session was not granted within --lock-timeout."""


# -- the one classification of failures ---------------------------------------------------
#
# Every exception that is not already an ItemctlError passes through ``classify`` on its
# way to the user: driver errors of both backends (by SQLSTATE or SQLite's error name),
# SQLAlchemy's URL and driver errors, Alembic's command errors and OS errors on paths.
# What it does not know stays unclassified: exit 1, a bug. Messages are built from the
# driver's primary message only, never from the statement or its parameters.

# PostgreSQL SQLSTATEs (or classes, by prefix) that mean "could not talk to the database
# (any more)": connection exceptions, authentication, unknown database, and the server
# ending the session (57P01-57P03; not 57014, a cancelled statement).
UNREACHABLE_SQLSTATES = ("08", "28", "3D", "57P01", "57P02", "57P03")
TRANSIENT_SQLSTATES = ("40001", "40P01")
LOCK_NOT_AVAILABLE = "55P03"
READ_ONLY = "25006"
QUERY_CANCELED = "57014"
INSUFFICIENT_PRIVILEGE = "42501"
UNDEFINED_OBJECT_SQLSTATES = ("42P01", "42703", "42883")

# SQLite result codes by name (sqlite3.Error.sqlite_errorname, Python 3.11+).
_SQLITE_UNUSABLE = ("SQLITE_NOTADB", "SQLITE_CANTOPEN", "SQLITE_CORRUPT", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_PERM", "SQLITE_AUTH")
_SQLITE_READONLY = "SQLITE_READONLY"
_SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


def primary_message(error: BaseException) -> str:
    """The driver's own message, first line only: never the statement or its parameters."""
    orig = getattr(error, "orig", None) or error
    diag = getattr(orig, "diag", None)
    text = getattr(diag, "message_primary", None) or str(orig)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _driver(error: BaseException) -> BaseException:
    """The driver's own exception: SQLAlchemy's ``orig``, or the error itself."""
    return getattr(error, "orig", None) or error


def sqlstate_of(error: BaseException) -> str | None:
    return getattr(_driver(error), "sqlstate", None)


def _sqlite_name(error: BaseException) -> str | None:
    return getattr(_driver(error), "sqlite_errorname", None)


def _is_operational(driver: BaseException) -> bool:
    """psycopg's OperationalError or a subclass (ConnectionTimeout: a server that accepts the
    connection and never answers)."""
    return any(cls.__name__ == "OperationalError" for cls in type(driver).__mro__)


def is_unreachable(error: BaseException) -> bool:
    """True for a driver error meaning the database could not be reached or refused us."""

    if not _is_driver_error(error):
        return False
    if getattr(error, "connection_invalidated", False):
        return True
    sqlstate = sqlstate_of(error)
    driver = _driver(error)
    if sqlstate is None and type(driver).__module__.startswith("psycopg") and _is_operational(driver):
        # psycopg reports refused connections, timeouts, unknown hosts and bad passwords
        # during connect without an SQLSTATE.
        return True
    return bool(sqlstate) and sqlstate.startswith(UNREACHABLE_SQLSTATES)


# The server answered and said no: authentication, an unknown role or database.
REFUSED_SQLSTATES = ("28", "3D")


# libpq's words for a setting it cannot use, found before any connection is tried:
# `invalid port number: "99999"`, `invalid sslmode value: "bogus"`.
_LIBPQ_SETTING = re.compile(r'invalid [a-z_ ]+(?:value|number)(?:: ".*")?|definition of service ".*" not found')


def _refused(error: BaseException) -> bool:
    """Whether the server answered (refused) rather than nothing answering (unreachable).
    psycopg gives no SQLSTATE for a refusal at connect time; the server's own FATAL does."""
    sqlstate = sqlstate_of(error) or ""
    return sqlstate.startswith(REFUSED_SQLSTATES) or "FATAL:" in str(_driver(error))


def classify(error: BaseException, *, database: str = "the database", role: str | None = None) -> ItemctlError | None:
    """The ItemctlError (exit code, one line, hint) this failure means, or None for a bug.

    ``database`` names the database for messages (its URL with the password hidden), and
    ``role`` the role it logged in as, named when a privilege is missing.
    """
    if isinstance(error, ItemctlError):
        return error
    if isinstance(error, KeyboardInterrupt):
        return Interrupted("interrupted; nothing was changed")
    module = type(error).__module__
    if module.startswith(("sqlalchemy", "psycopg", "sqlite3")):
        # Bulk work talks to psycopg directly (COPY): its errors arrive unwrapped.
        return _classify_database(error, database, role)
    if module.startswith("alembic"):
        # CommandError ("Can't locate revision identified by '0009'") and the revision
        # map's errors (a relative downgrade past the base): a revision that is not there.
        return SchemaError(
            f"{primary_message(error).rstrip('.')}",
            hint="see `itemctl db history` for the revisions this itemctl knows",
        )
    if type(error).__name__ == "BadGzipFile" or isinstance(error, EOFError):
        return InvalidInput(f"the compressed input is not whole gzip: {error}", hint="check the file, or drop .gz from its name")
    if isinstance(error, OSError) and getattr(error, "filename", None):
        return InvalidInput(f"cannot use {error.filename}: {error.strerror or primary_message(error)}")
    return None


# Python's sqlite3 reading a TEXT value that is not UTF-8.
_NOT_UTF8 = re.compile(r"Could not decode to UTF-8 column '(\w+)'")


def _is_driver_error(error: BaseException) -> bool:
    """A DBAPI error: wrapped by SQLAlchemy, or straight from psycopg or sqlite3."""
    from sqlalchemy import exc

    if isinstance(error, exc.DBAPIError):
        return True
    return type(error).__module__.startswith(("psycopg", "sqlite3")) and hasattr(error, "args")


def _classify_database(error: BaseException, database: str, role: str | None = None) -> ItemctlError | None:
    from sqlalchemy import exc

    if isinstance(error, (exc.ArgumentError, exc.NoSuchModuleError)) and not isinstance(error, exc.DBAPIError):
        return DatabaseUnavailable(
            f"invalid database URL: {primary_message(error)}",
            hint="use postgresql://USER@HOST:PORT/DB or sqlite:///PATH",
        )
    if not _is_driver_error(error):
        return None
    reason = primary_message(error)
    undecodable = _NOT_UTF8.match(reason)
    if undecodable:
        # sqlite3 quotes the row's text after this: never repeated.
        return InvalidInput(
            f"the database holds text that is not UTF-8 in column {undecodable.group(1)} (another program wrote it); itemctl cannot read that row",
            hint=f"find and repair the row with the sqlite3 shell: hex({undecodable.group(1)}) shows its bytes",
        )
    if is_unreachable(error):
        misread = _LIBPQ_SETTING.search(reason)
        if misread and not _refused(error):
            return DatabaseUnavailable(
                f"{database} is misconfigured: {misread.group()}",
                hint="libpq refused this setting before trying to connect: check the URL's port and parameters, and PG* variables",
            )
        if _refused(error):
            return DatabaseUnavailable(
                f"{database} refused the connection: {reason.split('FATAL:', 1)[-1].strip()}",
                hint="the server answered: check the role, its password and the database name",
            )
        return DatabaseUnavailable(f"{database} is unreachable: {reason}", hint="nothing answered: check the host and port, and that the server is up")
    sqlstate = sqlstate_of(error) or ""
    name = _sqlite_name(error) or ""
    if sqlstate in TRANSIENT_SQLSTATES:
        return TransientConflict(
            "the change collided with a concurrent one (serialization failure or deadlock) and was rolled back",
            hint="run the command again",
        )
    if sqlstate == LOCK_NOT_AVAILABLE or name in _SQLITE_BUSY:
        return LockTimeout(
            "gave up waiting for a lock held by another session; nothing was changed",
            hint="find the other session, or raise {lock_timeout}",
            fields=("lock_timeout",),
        )
    if sqlstate == READ_ONLY or name == _SQLITE_READONLY:
        return DatabaseUnavailable(
            f"{database} is read-only (a hot standby, or default_transaction_read_only) and this command writes; nothing was changed",
            hint="point itemctl at the primary server",
        )
    if sqlstate == QUERY_CANCELED:
        why = "statement_timeout" if "statement timeout" in reason else "a cancel request"
        return DatabaseUnavailable(
            f"the server cancelled a statement ({why}: {reason}); nothing was changed",
            hint="raise the server's statement_timeout, or run the command when the server is less busy",
        )
    if name.startswith(_SQLITE_UNUSABLE):  # extended codes too: SQLITE_IOERR_SHMSIZE
        return DatabaseUnavailable(f"{database} is not usable: {reason}")
    if sqlstate.startswith(UNDEFINED_OBJECT_SQLSTATES) or "no such table" in reason or "no such column" in reason:
        return SchemaError(
            f"the database schema does not match this itemctl: {reason}",
            hint="run `itemctl db check`",
        )
    if sqlstate.startswith("23") or name.startswith("SQLITE_CONSTRAINT"):
        return ConflictError(f"a concurrent change conflicts with this one: {reason}", hint="run the command again")
    if sqlstate == INSUFFICIENT_PRIVILEGE:
        return PermissionDenied(
            f"the database role{f' {role!r}' if role else ''} may not do this: {reason}",
            hint="ask the database owner to grant it, or run the command as a role that has it",
        )
    if sqlstate.startswith(("53", "58")):
        return DatabaseUnavailable(f"{database} cannot do this now: {reason}")
    if sqlstate.startswith(("22", "54")) or isinstance(error, exc.DataError) or type(_driver(error)).__name__ == "DataError":
        # Also the driver's own refusals before sending (psycopg: a NUL in text).
        return InvalidInput(f"the database refused a value: {reason}")
    return None
