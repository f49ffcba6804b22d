"""User management and tags: the permission table, bootstrap, last-admin protection."""

from __future__ import annotations

import pytest
from sqlmodel import select

from itemctl.core.errors import ConflictError, NotFoundError, PermissionDenied
from itemctl.models import Item, ItemTag, Tag, TagCreate, UserCreate, UserUpdate
from itemctl.services import tags, users


def test_while_there_is_no_admin_anyone_may_create_one(session, alice):
    created = users.create_user(session=session, actor=alice, user_in=UserCreate(username="root", is_admin=True))
    assert created.is_admin


def test_while_there_is_no_admin_anyone_may_grant_admin(session, alice):
    assert users.update_user(session=session, actor=alice, username="alice", user_in=UserUpdate(is_admin=True)).is_admin


def test_once_an_admin_exists_only_admins_manage_users(session, alice, admin):
    for attempt in (
        lambda: users.create_user(session=session, actor=alice, user_in=UserCreate(username="carol")),
        lambda: users.create_user(session=session, actor=alice, user_in=UserCreate(username="boss", is_admin=True)),
        lambda: users.update_user(session=session, actor=alice, username="alice", user_in=UserUpdate(is_admin=True)),
        lambda: users.delete_user(session=session, actor=alice, username="admin"),
    ):
        with pytest.raises(PermissionDenied, match="only an admin"):
            attempt()
    assert users.create_user(session=session, actor=admin, user_in=UserCreate(username="carol")).username == "carol"
    assert users.update_user(session=session, actor=admin, username="carol", user_in=UserUpdate(email="c@example.com")).email == "c@example.com"


def test_even_without_admins_plain_users_cannot_create_plain_users(session, alice):
    with pytest.raises(PermissionDenied):
        users.create_user(session=session, actor=alice, user_in=UserCreate(username="carol"))


def test_the_last_admin_cannot_be_demoted_or_deleted(session, admin):
    with pytest.raises(ConflictError, match="last admin"):
        users.update_user(session=session, actor=admin, username="admin", user_in=UserUpdate(is_admin=False))
    with pytest.raises(ConflictError, match="last admin"):
        users.delete_user(session=session, actor=admin, username="admin")
    users.create_user(session=session, actor=admin, user_in=UserCreate(username="second", is_admin=True))
    assert not users.update_user(session=session, actor=admin, username="admin", user_in=UserUpdate(is_admin=False)).is_admin


def test_duplicates_are_conflicts(session, admin, make_user):
    make_user("carol", email="carol@example.com")
    with pytest.raises(ConflictError, match="already exists"):
        users.create_user(session=session, actor=admin, user_in=UserCreate(username="carol"))
    with pytest.raises(ConflictError, match="email"):
        users.create_user(session=session, actor=admin, user_in=UserCreate(username="dave", email="carol@example.com"))


def test_deleting_a_user_takes_their_items_and_reports_how_many(session, admin, alice, make_item):
    make_item(alice, "one", "ops")
    make_item(alice, "two")
    gone = users.delete_user(session=session, actor=admin, username="alice")
    assert gone.item_count == 2
    session.expire_all()
    assert session.exec(select(Item)).all() == [] and session.exec(select(ItemTag)).all() == []
    assert [t.name for t in session.exec(select(Tag)).all()] == ["ops"]


def test_user_list_counts_items_and_filters_admins(session, admin, alice, make_item):
    make_item(alice, "one")
    listed = {u.username: u.item_count for u in users.list_users(session=session)}
    assert listed == {"admin": 0, "alice": 1}
    assert [u.username for u in users.list_users(session=session, admins_only=True)] == ["admin"]


def test_unknown_user_is_not_found(session):
    with pytest.raises(NotFoundError):
        users.get_user(session=session, username="nobody")


# -- tags ---------------------------------------------------------------------------------------


def test_any_user_creates_tags_and_duplicates_in_any_case_conflict(session, alice):
    assert tags.create_tag(session=session, actor=alice, tag_in=TagCreate(name="Ops")).name == "Ops"
    with pytest.raises(ConflictError):
        tags.create_tag(session=session, actor=alice, tag_in=TagCreate(name="OPS"))


def test_only_admins_rename_or_delete_tags(session, alice, admin, make_item):
    make_item(alice, "x", "ops")
    with pytest.raises(PermissionDenied):
        tags.rename_tag(session=session, actor=alice, old="ops", new=TagCreate(name="Ops"))
    with pytest.raises(PermissionDenied):
        tags.delete_tag(session=session, actor=alice, name="ops")
    assert tags.rename_tag(session=session, actor=admin, old="OPS", new=TagCreate(name="Ops")).name == "Ops"
    gone = tags.delete_tag(session=session, actor=admin, name="ops")
    assert gone.item_count == 1
    session.expire_all()
    assert len(session.exec(select(Item)).all()) == 1


def test_rename_onto_another_tag_is_a_conflict(session, admin):
    tags.create_tag(session=session, actor=admin, tag_in=TagCreate(name="a"))
    tags.create_tag(session=session, actor=admin, tag_in=TagCreate(name="b"))
    with pytest.raises(ConflictError):
        tags.rename_tag(session=session, actor=admin, old="a", new=TagCreate(name="B"))
    with pytest.raises(NotFoundError):
        tags.rename_tag(session=session, actor=admin, old="zzz", new=TagCreate(name="c"))


def test_tag_list_counts_items(session, alice, make_item):
    make_item(alice, "one", "ops", "b")
    make_item(alice, "two", "ops")
    tags.create_tag(session=session, actor=alice, tag_in=TagCreate(name="unused"))
    assert [(t.name, t.item_count) for t in tags.list_tags(session=session)] == [("b", 1), ("ops", 2), ("unused", 0)]
