"""Tags: shared between items, unique case-insensitively (the first spelling is kept)."""

from __future__ import annotations

import unicodedata

from sqlalchemy import delete, func, literal
from sqlmodel import Session, select

from itemctl.core.errors import ConflictError, NotFoundError
from itemctl.core.text import shown, fold_case
from itemctl.models import ItemTag, Tag, TagCreate, TagPublic, User
from itemctl.services import audit
from itemctl.services.common import conflict_on_duplicate, validated
from itemctl.services.identity import require_admin


def tag_order(name: str) -> tuple[str, str]:
    """How tag names are listed everywhere: case-folded, then as spelled, by code point
    (PostgreSQL sorts the same with ``lower(name) COLLATE "C", name COLLATE "C"``)."""
    return (fold_case(name), name)


def _by_name(session: Session, name: str) -> Tag | None:
    # Both sides lowered by the database, as its unique index on lower(name) is (on
    # SQLite, itemctl's Unicode-wide lower()); the name compared in NFC, as stored.
    wanted = unicodedata.normalize("NFC", name.strip())
    return session.exec(select(Tag).where(func.lower(Tag.name) == func.lower(literal(wanted)))).first()


def get_tag(*, session: Session, name: str) -> Tag:
    tag = _by_name(session, name)
    if tag is None:
        raise NotFoundError(f"tag {shown(name.strip())} not found")
    return tag


def find_tags(*, session: Session, names: list[str]) -> list[Tag]:
    """Existing tags by name (case-insensitive); an unknown name is not found (exit 3)."""
    return [get_tag(session=session, name=name) for name in names]


def ensure_tags(*, session: Session, names: list[str]) -> list[Tag]:
    """The tags with these names, creating the missing ones (any user may)."""
    tags: dict[str, Tag] = {}
    for name in names:
        clean = validated(TagCreate, {"name": name}).name
        key = fold_case(clean)
        if key in tags:
            continue
        tag = _by_name(session, clean)
        if tag is None:
            tag = Tag(name=clean)
            with conflict_on_duplicate(session, f"tag {clean!r} was created concurrently; run the command again"):
                session.add(tag)
        tags[key] = tag
    return list(tags.values())


def list_tags(*, session: Session) -> list[TagPublic]:
    """Every tag with its item count, in one query."""
    rows = session.exec(
        select(Tag.name, func.count(ItemTag.item_id))
        .outerjoin(ItemTag, ItemTag.tag_id == Tag.id)
        .group_by(Tag.id, Tag.name)
        .order_by(func.lower(Tag.name))
    ).all()
    return [TagPublic(name=name, item_count=count) for name, count in rows]


def names_starting_with(*, session: Session, prefix: str, limit: int) -> list[str]:
    """Tag names that begin with ``prefix`` (any case), in the order ``tags list`` shows
    them: what a shell completes."""
    statement = (
        select(Tag.name)
        .where(func.lower(Tag.name).startswith(prefix.lower(), autoescape=True))
        .order_by(func.lower(Tag.name))
        .limit(limit)
    )
    return list(session.exec(statement).all())


def _public(session: Session, tag: Tag) -> TagPublic:
    count = session.exec(select(func.count()).select_from(ItemTag).where(ItemTag.tag_id == tag.id)).one()
    return TagPublic(name=tag.name, item_count=count)


def create_tag(*, session: Session, actor: User, tag_in: TagCreate) -> TagPublic:
    if _by_name(session, tag_in.name) is not None:
        raise ConflictError(f"tag {tag_in.name!r} already exists")
    tag = Tag(name=tag_in.name)
    with conflict_on_duplicate(session, f"tag {tag_in.name!r} already exists"):
        session.add(tag)
        session.flush()
    audit.record(session, actor=actor, action="tags.create", target=tag.name)
    return _public(session, tag)


def rename_tag(*, session: Session, actor: User, old: str, new: TagCreate) -> TagPublic:
    """Admins only. Renaming to another spelling of the same name is allowed."""
    require_admin(actor, "rename tags")
    tag = get_tag(session=session, name=old)
    old_name = tag.name
    other = _by_name(session, new.name)
    if other is not None and other.id != tag.id:
        raise ConflictError(f"tag {other.name!r} already exists")
    tag.name = new.name
    with conflict_on_duplicate(session, f"tag {new.name!r} already exists"):
        session.add(tag)
        session.flush()
    audit.record(session, actor=actor, action="tags.rename", target=new.name, details={"from": old_name})
    return _public(session, tag)


def tag_to_delete(*, session: Session, actor: User, name: str) -> TagPublic:
    require_admin(actor, "delete tags")
    return _public(session, get_tag(session=session, name=name))


def delete_tag(*, session: Session, actor: User, name: str) -> TagPublic:
    """Admins only. The tag's links go with it; the items stay."""
    gone = tag_to_delete(session=session, actor=actor, name=name)
    session.execute(delete(Tag).where(Tag.name == gone.name))
    audit.record(session, actor=actor, action="tags.delete", target=gone.name, details={"items_untagged": gone.item_count})
    return gone
