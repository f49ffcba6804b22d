"""Errors that reach the user, each carrying its exit code from the contract.

Services raise these; ``itemctl.cli.main`` is the one place that prints them and exits.
"""

from __future__ import annotations


class ItemctlError(Exception):
    """Base of every error the user is meant to see."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


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


# Secrets that must never be printed: passwords found in the configuration are
# registered here as soon as they are read, and every message is passed through
# ``redact`` on its way out.
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    if value:
        _secrets.add(value)


def redact(text: str) -> str:
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
