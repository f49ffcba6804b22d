"""Items: create, read, list, update, tag, untag, delete — with ownership rules."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence

from sqlalchemy import and_, delete, func, literal_column, or_, text
from sqlmodel import Session, select

from itemctl.core.errors import ConflictError, InvalidInput, PermissionDenied, UsageError
from itemctl.models import Item, ItemCreate, ItemPublic, ItemTag, ItemUpdate, Tag, User
from itemctl.models.base import utcnow
from itemctl.services import audit, reads
from itemctl.services.reads import ItemFilters, check_matches, filter_sql, id_digits, id_range
from itemctl.services.common import Notify, conflict_on_duplicate, quiet
from itemctl.services.identity import require_admin, require_owner_or_admin
from itemctl.services.tags import ensure_tags, find_tags, tag_order
from itemctl.services.users import get_user
from itemctl.store.driver import Reader, colon_parameters

# -- finding items by id or prefix ---------------------------------------------------------


def find_item(session: Session, ref: str) -> Item:
    """The item whose UUID is ``ref``, or starts with it (at least 8 hex digits)."""
    return find_items(session, [ref])[0]


def find_items(session: Session, refs: Sequence[str]) -> list[Item]:
    """The items named by UUIDs or unique prefixes, in one query however many there are.

    Every ref must match exactly one item: an unknown one is not found (exit 3), an
    ambiguous prefix invalid (exit 6, listing candidates).
    """
    wanted = [(ref, id_digits(ref)) for ref in refs]
    ranges = [id_range(digits) for _, digits in wanted]
    condition = or_(*(and_(Item.id >= low, Item.id <= high) for low, high in ranges))
    # Each range holds one item when all is well; a few more show an ambiguity.
    limit = 5 * len(wanted) + 1
    candidates = session.exec(select(Item).where(condition).order_by(Item.id).limit(limit)).all()
    found: dict[uuid.UUID, Item] = {}
    for (ref, digits), (low, high) in zip(wanted, ranges):
        matches = [item for item in candidates if low <= item.id <= high]
        check_matches(ref, digits, [m.id for m in matches])
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


def _filtered(statement, session: Session, actor: User, filters: ItemFilters):
    """``statement`` narrowed by the filters: the SQL of ``reads.filter_sql``, the one
    place the filters are written."""
    conditions, params = filter_sql(Reader.of(session.connection()), actor, filters)
    for condition in conditions:
        clause = text(colon_parameters(condition))
        named = {name: value for name, value in params.items() if f"%({name})s" in condition}
        statement = statement.where(clause.bindparams(**named) if named else clause)
    return statement


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
    return reads.count_items(db=Reader.of(session.connection()), actor=actor, filters=filters)


def items_matching(*, session: Session, actor: User, filters: ItemFilters, page: int = 1000) -> Iterator[dict]:
    """Every item the filters match (records as ``items list`` gives them), oldest first,
    a page at a time (keyset pagination: a fixed number of queries per page, and memory
    for one page)."""
    db = Reader.of(session.connection())
    after = None
    while True:
        found = reads.list_items(db=db, actor=actor, filters=filters, limit=page, after=after, sort="oldest")
        yield from found
        if len(found) < page:
            return
        after = found[-1]["id"]


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
