"""Items: create, read, list, update, tag, untag, delete — with ownership rules."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from sqlalchemy import and_, delete, exists, func, literal, literal_column, or_, text, tuple_
from sqlmodel import Session, select

from itemctl.core.errors import InvalidInput, NotFoundError, UsageError
from itemctl.models import Item, ItemCreate, ItemPublic, ItemTag, ItemUpdate, Tag, User
from itemctl.models.base import utcnow
from itemctl.services import audit
from itemctl.services.common import conflict_on_duplicate
from itemctl.services.identity import require_owner_or_admin
from itemctl.services.tags import ensure_tags, find_tags
from itemctl.services.users import get_user

Sort = Literal["newest", "oldest", "title"]
MAX_LIMIT = 10_000
PREFIX_MIN = 8
_HEX = re.compile(r"[0-9a-f]+")


@dataclass
class ItemFilters:
    """The filters shared by ``items list``, ``items count`` and ``items export``."""

    owner: str | None = None
    mine: bool = False
    tags: list[str] = field(default_factory=list)
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def parse_timestamp(value: str | None, option: str) -> datetime | None:
    """ISO 8601; a timestamp without a zone is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"invalid {option}: {value!r} is not an ISO 8601 date or timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# -- finding items by id or prefix ---------------------------------------------------------


def find_item(session: Session, ref: str) -> Item:
    """The item whose UUID is ``ref``, or starts with it (at least 8 hex digits)."""
    digits = ref.strip().lower().replace("-", "")
    if len(digits) < PREFIX_MIN or len(digits) > 32 or not _HEX.fullmatch(digits):
        raise InvalidInput(
            f"invalid item id {ref!r}: give a UUID or at least {PREFIX_MIN} of its leading hex digits"
        )
    if len(digits) == 32:
        item = session.get(Item, uuid.UUID(digits))
        if item is None:
            raise NotFoundError(f"item {ref} not found")
        return item
    # A prefix is a range of UUIDs, so the primary key index answers it on every dialect.
    low = uuid.UUID(digits.ljust(32, "0"))
    high = uuid.UUID(digits.ljust(32, "f"))
    matches = session.exec(
        select(Item).where(Item.id >= low, Item.id <= high).order_by(Item.id).limit(6)
    ).all()
    if not matches:
        raise NotFoundError(f"no item id starts with {ref}")
    if len(matches) > 1:
        shown = ", ".join(str(m.id) for m in matches[:5])
        more = " and more" if len(matches) > 5 else ""
        raise InvalidInput(f"item id prefix {ref} is ambiguous: {shown}{more}", hint="give more digits")
    return matches[0]


# -- reading -----------------------------------------------------------------------------


def _tag_names(session: Session, item_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """Tag names of many items in one query, each list sorted case-insensitively."""
    names: dict[uuid.UUID, list[str]] = defaultdict(list)
    if item_ids:
        rows = session.exec(
            select(ItemTag.item_id, Tag.name)
            .join(Tag, Tag.id == ItemTag.tag_id)
            .where(ItemTag.item_id.in_(item_ids))
        ).all()
        for item_id, name in rows:
            names[item_id].append(name)
    for tag_list in names.values():
        tag_list.sort(key=lambda n: (n.casefold(), n))
    return names


def _public(item: Item, owner: str, tags: list[str]) -> ItemPublic:
    return ItemPublic(
        id=item.id,
        title=item.title,
        description=item.description,
        owner=owner,
        tags=tags,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def public_item(session: Session, item: Item) -> ItemPublic:
    owner = session.get(User, item.owner_id)
    return _public(item, owner.username, _tag_names(session, [item.id]).get(item.id, []))


def get_item(*, session: Session, ref: str) -> ItemPublic:
    return public_item(session, find_item(session, ref))


def _filtered(statement, session: Session, actor: User, filters: ItemFilters):
    if filters.mine:
        statement = statement.where(Item.owner_id == actor.id)
    elif filters.owner:
        statement = statement.where(Item.owner_id == get_user(session=session, username=filters.owner).id)
    for name in filters.tags:
        statement = statement.where(
            exists()
            .where(ItemTag.item_id == Item.id)
            .where(ItemTag.tag_id == Tag.id)
            .where(func.lower(Tag.name) == func.lower(literal(name.strip())))
        )
    if filters.search:
        statement = statement.where(Item.title.icontains(filters.search, autoescape=True))
    if filters.created_after:
        statement = statement.where(Item.created_at > filters.created_after)
    if filters.created_before:
        statement = statement.where(Item.created_at < filters.created_before)
    return statement


_ORDER = {
    "newest": lambda: (Item.created_at.desc(), Item.id.desc()),
    "oldest": lambda: (Item.created_at.asc(), Item.id.asc()),
    "title": lambda: (Item.title.asc(), Item.id.asc()),
}


def _after(session: Session, ref: str, sort: Sort):
    """Keyset continuation: the rows that come after ``ref`` in this sort order."""
    anchor = find_item(session, ref)
    if sort == "newest":
        return tuple_(Item.created_at, Item.id) < tuple_(anchor.created_at, anchor.id)
    if sort == "oldest":
        return tuple_(Item.created_at, Item.id) > tuple_(anchor.created_at, anchor.id)
    return or_(Item.title > anchor.title, and_(Item.title == anchor.title, Item.id > anchor.id))


def list_items(
    *,
    session: Session,
    actor: User,
    filters: ItemFilters,
    limit: int = 100,
    offset: int = 0,
    after: str | None = None,
    sort: Sort = "newest",
) -> list[ItemPublic]:
    """One page of items; owners and tags loaded in bulk (a fixed number of queries)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"--limit must be between 1 and {MAX_LIMIT}, not {limit}")
    if after and offset:
        raise UsageError("--after and --offset cannot be combined")
    statement = select(Item, User.username).join(User, User.id == Item.owner_id)
    statement = _filtered(statement, session, actor, filters)
    if after:
        statement = statement.where(_after(session, after, sort))
    statement = statement.order_by(*_ORDER[sort]()).offset(offset).limit(limit)
    rows = session.exec(statement).all()
    tags = _tag_names(session, [item.id for item, _ in rows])
    return [_public(item, owner, tags.get(item.id, [])) for item, owner in rows]


def export_statement(*, session: Session, actor: User, filters: ItemFilters, tags_as_list: bool):
    """title, description, owner and tags of the matching items, oldest first.

    On PostgreSQL the tags come aggregated and sorted by the server (a ``;``-joined string,
    or an array with ``tags_as_list``); on SQLite as a ``;``-joined string in any order.
    """
    names = (
        select(Tag.name)
        .join(ItemTag, ItemTag.tag_id == Tag.id)
        .where(ItemTag.item_id == Item.id)
        .correlate(Item)
    )
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import aggregate_order_by

        if tags_as_list:
            aggregate = func.array_agg(aggregate_order_by(Tag.name, func.lower(Tag.name), Tag.name))
            tags = func.coalesce(names.with_only_columns(aggregate).scalar_subquery(), text("'{}'::text[]"))
        else:
            separator = aggregate_order_by(literal_column("';'"), func.lower(Tag.name), Tag.name)
            tags = names.with_only_columns(func.string_agg(Tag.name, separator)).scalar_subquery()
    else:
        tags = names.with_only_columns(func.group_concat(Tag.name, ";")).scalar_subquery()
    statement = (
        select(Item.title, Item.description, User.username.label("owner"), tags.label("tags"))
        .join(User, User.id == Item.owner_id)
        .order_by(Item.created_at, Item.id)
    )
    return _filtered(statement, session, actor, filters)


def count_items(*, session: Session, actor: User, filters: ItemFilters) -> int:
    statement = _filtered(select(func.count()).select_from(Item), session, actor, filters)
    return session.exec(statement).one()


# -- changing ----------------------------------------------------------------------------


def _owner_for(session: Session, actor: User, owner: str | None, action: str) -> User:
    if owner is None or owner == actor.username:
        return actor
    target = get_user(session=session, username=owner)
    require_owner_or_admin(actor, target.id, action)
    return target


def _duplicate_title(title: str, owner: User) -> str:
    return f"item {title!r} already exists for {owner.username}"


def create_item(
    *, session: Session, actor: User, item_in: ItemCreate, owner: str | None = None
) -> ItemPublic:
    """Create an item owned by the actor (or, for an admin, by ``owner``)."""
    owner_user = _owner_for(session, actor, owner, "create items for another user")
    now = utcnow()
    item = Item(
        title=item_in.title,
        description=item_in.description,
        owner_id=owner_user.id,
        created_at=now,
        updated_at=now,
    )
    with conflict_on_duplicate(session, _duplicate_title(item.title, owner_user)):
        session.add(item)
        session.flush()
    _link(session, item, ensure_tags(session=session, names=item_in.tags))
    public = public_item(session, item)
    audit.record(session, actor=actor, action="items.create", target=str(item.id),
                 details={"title": public.title, "owner": public.owner, "tags": public.tags})
    return public


def _link(session: Session, item: Item, tags: Sequence[Tag]) -> None:
    present = set(
        session.exec(select(ItemTag.tag_id).where(ItemTag.item_id == item.id)).all()
    )
    for tag in tags:
        if tag.id not in present:
            session.add(ItemTag(item_id=item.id, tag_id=tag.id))
            present.add(tag.id)
    session.flush()


def update_item(
    *,
    session: Session,
    actor: User,
    ref: str,
    item_in: ItemUpdate,
    owner: str | None = None,
) -> ItemPublic:
    """Change title, description or (admins only) owner; updated_at moves on."""
    item = find_item(session, ref)
    require_owner_or_admin(actor, item.owner_id, "update this item")
    changes = item_in.model_dump(exclude_unset=True)
    owner_user = session.get(User, item.owner_id)
    if owner is not None and owner != owner_user.username:
        owner_user = get_user(session=session, username=owner)
        require_owner_or_admin(actor, owner_user.id, "give an item to another user")
        changes["owner_id"] = owner_user.id
    if "title" in changes and changes["title"] is None:
        raise InvalidInput("invalid title: must not be empty")
    item.sqlmodel_update(changes)
    item.updated_at = utcnow()
    with conflict_on_duplicate(session, _duplicate_title(item.title, owner_user)):
        session.add(item)
        session.flush()
    public = public_item(session, item)
    changed = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in changes.items()}
    audit.record(session, actor=actor, action="items.update", target=str(item.id), details={"changes": changed})
    return public


def tag_item(*, session: Session, actor: User, ref: str, names: list[str]) -> ItemPublic:
    """Add tags (created when new, matched case-insensitively when not)."""
    item = find_item(session, ref)
    require_owner_or_admin(actor, item.owner_id, "tag this item")
    _link(session, item, ensure_tags(session=session, names=names))
    item.updated_at = utcnow()
    session.add(item)
    audit.record(session, actor=actor, action="items.tag", target=str(item.id), details={"tags": names})
    return public_item(session, item)


def untag_item(*, session: Session, actor: User, ref: str, names: list[str]) -> ItemPublic:
    """Remove tags from an item; the tags themselves stay."""
    item = find_item(session, ref)
    require_owner_or_admin(actor, item.owner_id, "untag this item")
    tags = find_tags(session=session, names=names)
    session.execute(
        delete(ItemTag).where(ItemTag.item_id == item.id, ItemTag.tag_id.in_([t.id for t in tags]))
    )
    item.updated_at = utcnow()
    session.add(item)
    session.flush()
    audit.record(session, actor=actor, action="items.untag", target=str(item.id), details={"tags": names})
    return public_item(session, item)


def items_to_delete(*, session: Session, actor: User, refs: list[str]) -> list[ItemPublic]:
    """Find and check every item named (for a confirmation prompt, and for the delete)."""
    found: dict[uuid.UUID, Item] = {}
    for ref in refs:
        item = find_item(session, ref)
        require_owner_or_admin(actor, item.owner_id, "delete this item")
        found[item.id] = item
    return [public_item(session, item) for item in found.values()]


def delete_items(*, session: Session, actor: User, refs: list[str]) -> list[ItemPublic]:
    """Delete every item named, or none: all are found and checked before any goes."""
    gone = items_to_delete(session=session, actor=actor, refs=refs)
    session.execute(delete(Item).where(Item.id.in_([item.id for item in gone])))
    audit.record(
        session,
        actor=actor,
        action="items.delete",
        target=", ".join(str(item.id) for item in gone),
        details={"items": [{"id": str(i.id), "title": i.title, "owner": i.owner, "tags": i.tags} for i in gone]},
    )
    return gone
