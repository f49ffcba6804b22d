"""The audit trail: written by every service that changes data, in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from itemctl.core.errors import InvalidInput, NotFoundError
from itemctl.models import AuditEntry, AuditPublic, User
from itemctl.services.identity import IMPERSONATED_BY, require_admin

MAX_LIMIT = 10_000
# Every action an entry may record: `audit list --action` is checked against these.
ACTIONS = (
    "items.create", "items.update", "items.tag", "items.untag", "items.delete", "items.import",
    "users.create", "users.update", "users.delete",
    "tags.create", "tags.rename", "tags.delete",
    "db.migrate", "db.downgrade", "db.restore",
)


def database_role(session: Session) -> str | None:
    """The role the database knows us as (``session_user``), beside the claimed actor."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return None
    cached = connection.info.get("itemctl.db_role")
    if cached is None:
        cached = connection.execute(text("SELECT session_user")).scalar_one()
        connection.info["itemctl.db_role"] = cached
    return cached


def record(
    session: Session,
    *,
    actor: User | str | None,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add one entry; it commits or rolls back with the change it describes."""
    assert action in ACTIONS, f"unknown audit action {action!r}"
    name = actor.username if isinstance(actor, User) else actor
    details = details or {}
    impersonator = session.info.get(IMPERSONATED_BY)
    if impersonator:  # the login's own user acted as `name` (--as with identity from the login)
        details = {**details, "impersonated_by": impersonator}
    session.add(AuditEntry(actor=name, db_role=database_role(session), action=action, target=target, details=details))
    session.flush()


def list_entries(
    *,
    session: Session,
    actor: User,
    by: str | None = None,
    action: str | None = None,
    target: str | None = None,
    db_role: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[AuditPublic]:
    """Newest first; admins only. An action that does not exist is invalid (exit 6), so a
    typo never passes for "no such changes".

    ``target`` is an item id, a username or a tag name: entries naming it, alone or among
    the items one delete removed, whatever its case (tag names are case-insensitive)."""
    require_admin(actor, "read the audit trail")
    if action is not None and action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}: the actions are {', '.join(ACTIONS)}")
    statement = select(AuditEntry)
    if by:
        statement = statement.where(AuditEntry.actor == by)
    if action:
        statement = statement.where(AuditEntry.action == action)
    if target:
        statement = statement.where(_names(target))
    if db_role:
        statement = statement.where(AuditEntry.db_role == db_role)
    if since:
        statement = statement.where(AuditEntry.at >= since)
    if until:
        statement = statement.where(AuditEntry.at <= until)
    statement = statement.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    return [AuditPublic.model_validate(entry) for entry in session.exec(statement).all()]


def _names(target: str):
    """An entry's target is the name or id, or a list of item ids (``a, b, c``)."""
    from sqlalchemy import func, or_

    from itemctl.core.text import fold_case

    wanted = fold_case(target)
    named = func.lower(AuditEntry.target)
    return or_(
        named == wanted,
        named.startswith(f"{wanted}, ", autoescape=True),
        named.endswith(f", {wanted}", autoescape=True),
        named.contains(f", {wanted}, ", autoescape=True),
    )


def get_entry(*, session: Session, actor: User, entry_id: int) -> AuditPublic:
    """One entry by its id; admins only."""
    require_admin(actor, "read the audit trail")
    entry = session.get(AuditEntry, entry_id)
    if entry is None:
        raise NotFoundError(f"no audit entry {entry_id}")
    return AuditPublic.model_validate(entry)
