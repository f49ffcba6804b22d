"""Users: read, create, update, delete; admin rights and the last-admin rule."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from itemctl.models import Item, User, UserPublic


def public_user(*, session: Session, user: User) -> UserPublic:
    count = session.exec(select(func.count()).select_from(Item).where(Item.owner_id == user.id)).one()
    return UserPublic.model_validate(user, update={"item_count": count})
