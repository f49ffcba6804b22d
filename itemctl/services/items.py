"""Items: create, read, list, update, tag, untag, delete — with ownership rules."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal

from sqlalchemy import and_, delete, exists, func, literal, literal_column, or_, text, tuple_
from sqlmodel import Session, select

from itemctl.core.errors import ConflictError, InvalidInput, NotFoundError, PermissionDenied, UsageError
from itemctl.core.text import clean_text, fold_case
from itemctl.models import Item, ItemCreate, ItemPublic, ItemTag, ItemUpdate, Tag, User
from itemctl.models.base import utcnow
from itemctl.services import audit
from itemctl.services.common import Notify, conflict_on_duplicate, quiet
from itemctl.services.identity import require_admin, require_owner_or_admin
from itemctl.services.tags import ensure_tags, find_tags, tag_order
from itemctl.services.users import get_user

Sort = Literal["newest", "oldest", "title"]
MAX_LIMIT = 10_000
PREFIX_MIN = 8
_HEX = re.compile(r"[0-9a-f]+")


@dataclass
class ItemFilters:
    """The filters shared by ``items list``, ``items count`` and ``items export``.

    A filter given with an empty value is refused (exit 6), never taken as "no filter": a
    script whose variable is unset must not widen a listing, an export or a delete. Text
    is compared in NFC, as it is stored.
    """

    owner: str | None = None
    mine: bool = False
    tags: list[str] = field(default_factory=list)
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def __post_init__(self) -> None:
        for name, value in (("owner", self.owner), ("search", self.search), *(("tag", t) for t in self.tags)):
            if value is not None and not value.strip():
                raise InvalidInput(
                    f"{{{name}}} was given an empty value", hint=f"leave {{{name}}} out to match everything", fields=(name,)
                )
        try:
            if self.search is not None:
                self.search = clean_text(self.search)
            self.tags = [clean_text(t.strip()) for t in self.tags]
        except ValueError as error:
            raise InvalidInput(f"invalid filter: {error}") from None

    @property
    def given(self) -> bool:
        """True when at least one filter narrows the match."""
        return bool(self.owner or self.mine or self.tags or self.search or self.created_after or self.created_before)


_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_timestamp(value: str | None, option: str, *, now: datetime | None = None) -> datetime | None:
    """ISO 8601 (without a zone: UTC), or a duration ago: ``90s``, ``15m``, ``24h``, ``7d``, ``2w``."""
    if value is None:
        return None
    text = value.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        seconds = int(duration.group(1)) * _UNIT_SECONDS[duration.group(2)]
        try:
            return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
        except OverflowError:
            raise InvalidInput(f"invalid {option}: {value!r} reaches back before the year 1") from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"invalid {option}: {value!r} is neither an ISO 8601 date or timestamp nor a duration",
            hint="for example 2026-11-30, 2026-11-30T08:00:00Z, 90s, 15m, 24h, 7d or 2w",
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+14:00 is in the year 0 in UTC
        raise InvalidInput(f"invalid {option}: {value!r} falls outside the years 1 to 9999 in UTC") from None


# -- finding items by id or prefix ---------------------------------------------------------


def _digits(ref: str) -> str:
    digits = ref.strip().lower().replace("-", "")
    if len(digits) < PREFIX_MIN or len(digits) > 32 or not _HEX.fullmatch(digits):
        raise InvalidInput(
            f"invalid item id {ref!r}: give a UUID or at least {PREFIX_MIN} of its leading hex digits"
        )
    return digits


def _id_range(digits: str) -> tuple[uuid.UUID, uuid.UUID]:
    # A prefix is a range of UUIDs, so the primary key index answers it on every dialect.
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def find_item(session: Session, ref: str) -> Item:
    """The item whose UUID is ``ref``, or starts with it (at least 8 hex digits)."""
    return find_items(session, [ref])[0]


def find_items(session: Session, refs: Sequence[str]) -> list[Item]:
    """The items named by UUIDs or unique prefixes, in one query however many there are.

    Every ref must match exactly one item: an unknown one is not found (exit 3), an
    ambiguous prefix invalid (exit 6, listing candidates).
    """
    wanted = [(ref, _digits(ref)) for ref in refs]
    ranges = [_id_range(digits) for _, digits in wanted]
    condition = or_(*(and_(Item.id >= low, Item.id <= high) for low, high in ranges))
    # Each range holds one item when all is well; a few more show an ambiguity.
    limit = 5 * len(wanted) + 1
    candidates = session.exec(select(Item).where(condition).order_by(Item.id).limit(limit)).all()
    found: dict[uuid.UUID, Item] = {}
    for (ref, digits), (low, high) in zip(wanted, ranges):
        matches = [item for item in candidates if low <= item.id <= high]
        if not matches:
            raise NotFoundError(f"item {ref} not found" if len(digits) == 32 else f"no item id starts with {ref}")
        if len(matches) > 1:
            shown = ", ".join(str(m.id) for m in matches[:5])
            more = " and more" if len(matches) > 5 else ""
            raise InvalidInput(f"item id prefix {ref} is ambiguous: {shown}{more}", hint="give more digits")
        found[matches[0].id] = matches[0]
    return list(found.values())


# -- reading -----------------------------------------------------------------------------


def tag_names_of(session: Session, item_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
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
        tag_list.sort(key=tag_order)
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
    return _public(item, owner.username, tag_names_of(session, [item.id]).get(item.id, []))


def get_item(*, session: Session, ref: str) -> ItemPublic:
    return public_item(session, find_item(session, ref))


def _filtered(statement, session: Session, actor: User, filters: ItemFilters):
    if filters.mine:
        statement = statement.where(Item.owner_id == actor.id)
    elif filters.owner:
        statement = statement.where(Item.owner_id == get_user(session=session, username=filters.owner).id)
    wanted = {fold_case(name.strip()): name.strip() for name in filters.tags}
    if len(wanted) == 1:
        (name,) = wanted.values()
        statement = statement.where(
            exists()
            .where(ItemTag.item_id == Item.id)
            .where(ItemTag.tag_id == Tag.id)
            .where(func.lower(Tag.name) == func.lower(literal(name)))
        )
    elif wanted:
        # Items carrying all of them, in one grouped subquery whatever their number (one
        # correlated EXISTS per tag grows the plan past what a server answers in time).
        carrying = (
            select(ItemTag.item_id)
            .join(Tag, Tag.id == ItemTag.tag_id)
            .where(func.lower(Tag.name).in_([func.lower(literal(name)) for name in wanted.values()]))
            .group_by(ItemTag.item_id)
            .having(func.count(func.distinct(ItemTag.tag_id)) == len(wanted))
        )
        statement = statement.where(Item.id.in_(carrying))
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
        raise UsageError(f"{{limit}} must be between 1 and {MAX_LIMIT}, not {limit}", fields=("limit",))
    if after and offset:
        raise UsageError("{after} and {offset} cannot be combined", fields=("after", "offset"))
    statement = select(Item, User.username).join(User, User.id == Item.owner_id)
    statement = _filtered(statement, session, actor, filters)
    if after:
        statement = statement.where(_after(session, after, sort))
    statement = statement.order_by(*_ORDER[sort]()).offset(offset).limit(limit)
    rows = session.exec(statement).all()
    tags = tag_names_of(session, [item.id for item, _ in rows])
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
    ties = (User.username, Item.title)
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import aggregate_order_by

        ties = (User.username.collate("C"), Item.title.collate("C"))  # code point, as SQLite
        # By code point, as tag_order sorts on the client (not the database's collation).
        order = (func.lower(Tag.name).collate("C"), Tag.name.collate("C"))
        if tags_as_list:
            aggregate = func.array_agg(aggregate_order_by(Tag.name, *order))
            tags = func.coalesce(names.with_only_columns(aggregate).scalar_subquery(), text("'{}'::text[]"))
        else:
            separator = aggregate_order_by(literal_column("';'"), *order)
            tags = names.with_only_columns(func.string_agg(Tag.name, separator)).scalar_subquery()
    else:
        tags = names.with_only_columns(func.group_concat(Tag.name, ";")).scalar_subquery()
    # Ties (an import gives its rows one timestamp) are broken by owner and title, which
    # identify an item on every backend, rather than by id: the same items export alike
    # from SQLite and PostgreSQL whatever their ids.
    statement = (
        select(Item.title, Item.description, User.username.label("owner"), tags.label("tags"))
        .join(User, User.id == Item.owner_id)
        .order_by(Item.created_at, *ties)
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
    require_admin(actor, action)
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
    _link(session, item, ensure_tags(session=session, names=item_in.tags), new_item=True)
    public = public_item(session, item)
    audit.record(session, actor=actor, action="items.create", target=str(item.id),
                 details={"title": public.title, "owner": public.owner, "tags": public.tags})
    return public


def _linked_tag_ids(session: Session, item: Item) -> set[uuid.UUID]:
    return set(session.exec(select(ItemTag.tag_id).where(ItemTag.item_id == item.id)).all())


def _link(session: Session, item: Item, tags: Sequence[Tag], *, new_item: bool = False) -> None:
    """Link the tags the item lacks (a new item has none, so nothing is asked)."""
    present = _linked_tag_ids(session, item) if tags and not new_item else set()
    for tag in tags:
        if tag.id not in present:
            session.add(ItemTag(item_id=item.id, tag_id=tag.id))
            present.add(tag.id)
    session.flush()


def _unchanged(item: Item, why: str, on_notice: Notify) -> None:
    on_notice(f"item {str(item.id)[:8]} unchanged: {why}; nothing was written")


def update_item(
    *,
    session: Session,
    actor: User,
    ref: str,
    item_in: ItemUpdate,
    owner: str | None = None,
    on_notice: Notify = quiet,
) -> ItemPublic:
    """Change title, description or (admins only) owner; updated_at moves on.

    Permission comes first; a change that changes nothing writes nothing (no updated_at,
    no audit entry) and says so.
    """
    item = find_item(session, ref)
    require_owner_or_admin(actor, item.owner_id, "update this item")
    changes = item_in.model_dump(exclude_unset=True)
    if "title" in changes and changes["title"] is None:
        raise InvalidInput("invalid title: must not be empty")
    changes = {k: v for k, v in changes.items() if getattr(item, k) != v}
    details: dict = {"changes": dict(changes)} if changes else {}
    owner_user = session.get(User, item.owner_id)
    if owner is not None and owner != owner_user.username:
        new_owner = get_user(session=session, username=owner)
        require_admin(actor, "give an item to another user")
        changes["owner_id"] = new_owner.id
        details["owner"] = {"from": owner_user.username, "to": new_owner.username}
        owner_user = new_owner
    if not changes:
        _unchanged(item, "the title, description and owner are already as given", on_notice)
        return public_item(session, item)
    item.sqlmodel_update(changes)
    item.updated_at = utcnow()
    with conflict_on_duplicate(session, _duplicate_title(item.title, owner_user)):
        session.add(item)
        session.flush()
    public = public_item(session, item)
    audit.record(session, actor=actor, action="items.update", target=str(item.id), details=details)
    return public


def tag_item(*, session: Session, actor: User, ref: str, names: list[str], on_notice: Notify = quiet) -> ItemPublic:
    """Add tags (created when new, matched case-insensitively when not)."""
    item = find_item(session, ref)
    require_owner_or_admin(actor, item.owner_id, "tag this item")
    present = _linked_tag_ids(session, item)
    wanted = ensure_tags(session=session, names=names)
    new = [tag for tag in wanted if tag.id not in present]
    if not new:
        _unchanged(item, "it has every one of these tags already", on_notice)
        return public_item(session, item)
    _link(session, item, new)
    item.updated_at = utcnow()
    session.add(item)
    audit.record(session, actor=actor, action="items.tag", target=str(item.id), details={"tags": [t.name for t in new]})
    return public_item(session, item)


def untag_item(*, session: Session, actor: User, ref: str, names: list[str], on_notice: Notify = quiet) -> ItemPublic:
    """Remove tags from an item; the tags themselves stay."""
    item = find_item(session, ref)
    require_owner_or_admin(actor, item.owner_id, "untag this item")
    present = _linked_tag_ids(session, item)
    linked = [tag for tag in find_tags(session=session, names=names) if tag.id in present]
    if not linked:
        _unchanged(item, "it has none of these tags", on_notice)
        return public_item(session, item)
    session.execute(
        delete(ItemTag).where(ItemTag.item_id == item.id, ItemTag.tag_id.in_([t.id for t in linked]))
    )
    item.updated_at = utcnow()
    session.add(item)
    session.flush()
    audit.record(session, actor=actor, action="items.untag", target=str(item.id), details={"tags": [t.name for t in linked]})
    return public_item(session, item)


def items_to_delete(*, session: Session, actor: User, refs: list[str]) -> list[ItemPublic]:
    """Find and check every item named (for a confirmation prompt, and for the delete);
    a fixed number of queries however many items are named."""
    found = find_items(session, refs)
    for item in found:
        require_owner_or_admin(actor, item.owner_id, "delete this item")
    return _publics(session, found)


def _publics(session: Session, found: Sequence[Item]) -> list[ItemPublic]:
    """Public forms of many items: owners and tags in one query each."""
    owner_ids = {item.owner_id for item in found}
    owners = dict(session.exec(select(User.id, User.username).where(User.id.in_(owner_ids))).all()) if owner_ids else {}
    tags = tag_names_of(session, [item.id for item in found])
    return [_public(item, owners[item.owner_id], tags.get(item.id, [])) for item in found]


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


def describe_filters(filters: ItemFilters) -> dict:
    """The filters given, as the options a user typed them (for prompts and the audit trail)."""
    given = {
        "owner": filters.owner,
        "mine": filters.mine or None,
        "tag": filters.tags or None,
        "search": filters.search,
        "created_after": filters.created_after.isoformat() if filters.created_after else None,
        "created_before": filters.created_before.isoformat() if filters.created_before else None,
    }
    return {k: v for k, v in given.items() if v is not None}


def _where(filters: ItemFilters) -> str:
    """A delete by filters as the audit trail names it, by filter: ``where owner=bob tag=old``."""
    described = describe_filters(filters).items()
    return "where " + " ".join(f"{name}={','.join(value) if isinstance(value, list) else value}" for name, value in described)


def _require_filters(filters: ItemFilters) -> None:
    if not filters.given:
        raise UsageError(
            "{where} needs at least one filter ({owner}, {mine}, {tag}, {search}, {created_after}, {created_before})",
            hint="to delete everything, say so with a filter such as {created_before} 0s",
            fields=("where", "owner", "mine", "tag", "search", "created_after", "created_before"),
        )


def count_to_delete(*, session: Session, actor: User, filters: ItemFilters) -> int:
    """How many items ``delete --where`` would delete; refused (exit 5) when a non-admin's
    filters match another user's item. Two queries whatever the number."""
    _require_filters(filters)
    if not actor.is_admin:
        others = _filtered(select(Item.id), session, actor, filters).where(Item.owner_id != actor.id).limit(1)
        if session.exec(others).first() is not None:
            raise PermissionDenied(
                f"only an admin may delete another user's items, and these filters match some "
                f"(you are {actor.username!r}, not an admin); nothing was deleted",
                hint="add {mine} to delete only your own",
                fields=("mine",),
            )
    return count_items(session=session, actor=actor, filters=filters)


def items_matching(*, session: Session, actor: User, filters: ItemFilters, page: int = 1000) -> Iterator[ItemPublic]:
    """Every item the filters match, oldest first, a page at a time (keyset pagination: a
    fixed number of queries per page, and memory for one page)."""
    after = None
    while True:
        found = list_items(session=session, actor=actor, filters=filters, limit=page, after=after, sort="oldest")
        yield from found
        if len(found) < page:
            return
        after = str(found[-1].id)


def delete_where(*, session: Session, actor: User, filters: ItemFilters, confirmed: int | None = None) -> int:
    """Delete every item the filters match in one set-based statement (their links go by
    the foreign keys; tags stay), with one audit entry naming the filters and the count.

    ``confirmed``: the count a person agreed to; if another session changed what matches
    since, nothing is deleted (exit 4), rather than more or fewer than they saw."""
    matching_now = count_to_delete(session=session, actor=actor, filters=filters)
    if confirmed is not None and matching_now != confirmed:
        raise ConflictError(
            f"{matching_now} item(s) match now, not the {confirmed} you confirmed (another session changed them); nothing was deleted",
            hint="run the command again to see and confirm what matches now",
        )
    matching = _filtered(select(Item.id), session, actor, filters)
    if not actor.is_admin:  # also what another session added since the check
        matching = matching.where(Item.owner_id == actor.id)
    deleted = session.execute(delete(Item).where(Item.id.in_(matching.scalar_subquery()))).rowcount
    audit.record(
        session,
        actor=actor,
        action="items.delete",
        target=_where(filters),
        details={"filters": describe_filters(filters), "count": deleted},
    )
    return deleted
