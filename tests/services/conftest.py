from __future__ import annotations

import pytest

from itemctl.models import ItemCreate, User
from itemctl.services import items


@pytest.fixture
def make_user(session):
    def make(username: str, *, admin: bool = False, email: str | None = None) -> User:
        user = User(username=username, is_admin=admin, email=email)
        session.add(user)
        session.flush()
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def admin(make_user):
    return make_user("admin", admin=True)


@pytest.fixture
def make_item(session):
    def make(owner: User, title: str, *tags: str, description: str | None = None):
        return items.create_item(
            session=session,
            actor=owner,
            item_in=ItemCreate(title=title, description=description, tags=list(tags)),
        )

    return make
