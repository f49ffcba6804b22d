"""The schema's rules, enforced by the database itself (raw SQL, both dialects)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import exc, text


def insert_user(conn, username, email=None) -> str:
    user_id = uuid.uuid4().hex
    conn.execute(
        text('INSERT INTO "user" (id, username, email, is_admin, created_at) VALUES (:id, :u, :e, false, :t)'),
        {"id": user_id, "u": username, "e": email, "t": datetime.now(timezone.utc)},
    )
    return user_id


def insert_item(conn, owner_id, title) -> str:
    item_id = uuid.uuid4().hex
    now = datetime.now(timezone.utc)
    conn.execute(
        text("INSERT INTO item (id, title, owner_id, created_at, updated_at) VALUES (:id, :t, :o, :c, :c)"),
        {"id": item_id, "t": title, "o": owner_id, "c": now},
    )
    return item_id


def insert_tag(conn, name) -> str:
    tag_id = uuid.uuid4().hex
    conn.execute(text("INSERT INTO tag (id, name) VALUES (:id, :n)"), {"id": tag_id, "n": name})
    return tag_id


def link(conn, item_id, tag_id) -> None:
    conn.execute(text("INSERT INTO item_tag (item_id, tag_id) VALUES (:i, :t)"), {"i": item_id, "t": tag_id})


def count(conn, table) -> int:
    return conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()


@pytest.fixture
def conn(any_engine):
    with any_engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def world(conn):
    """alice owns two items tagged ops; bob owns one, tagged ops too."""
    alice, bob = insert_user(conn, "alice"), insert_user(conn, "bob")
    ops = insert_tag(conn, "ops")
    a1, a2, b1 = insert_item(conn, alice, "a1"), insert_item(conn, alice, "a2"), insert_item(conn, bob, "b1")
    for item in (a1, a2, b1):
        link(conn, item, ops)
    return {"alice": alice, "bob": bob, "ops": ops, "a1": a1, "b1": b1}


def test_deleting_a_user_deletes_its_items_and_links_but_no_tags(conn, world):
    conn.execute(text('DELETE FROM "user" WHERE id = :id'), {"id": world["alice"]})
    assert count(conn, "item") == 1
    assert count(conn, "item_tag") == 1
    assert count(conn, "tag") == 1


def test_deleting_an_item_deletes_its_links_but_not_the_tag(conn, world):
    conn.execute(text("DELETE FROM item WHERE id = :id"), {"id": world["a1"]})
    assert (count(conn, "item"), count(conn, "item_tag"), count(conn, "tag")) == (2, 2, 1)


def test_deleting_a_tag_deletes_its_links_but_not_the_items(conn, world):
    conn.execute(text("DELETE FROM tag WHERE id = :id"), {"id": world["ops"]})
    assert (count(conn, "item"), count(conn, "item_tag"), count(conn, "tag")) == (3, 0, 0)


def violates(conn, statement) -> bool:
    savepoint = conn.begin_nested()
    try:
        statement()
    except exc.IntegrityError:
        savepoint.rollback()
        return True
    savepoint.commit()
    return False


def test_owner_and_title_are_unique_together(conn, world):
    assert violates(conn, lambda: insert_item(conn, world["alice"], "a1"))
    assert not violates(conn, lambda: insert_item(conn, world["bob"], "a1"))


def test_tag_names_are_unique_case_insensitively(conn, world):
    assert violates(conn, lambda: insert_tag(conn, "OPS"))


def test_usernames_are_unique(conn, world):
    assert violates(conn, lambda: insert_user(conn, "alice"))


def test_emails_are_unique_when_set(conn):
    insert_user(conn, "u1", "same@example.com")
    assert violates(conn, lambda: insert_user(conn, "u2", "same@example.com"))
    insert_user(conn, "u3", None)
    assert not violates(conn, lambda: insert_user(conn, "u4", None))


def test_an_item_needs_an_existing_owner(conn):
    assert violates(conn, lambda: insert_item(conn, uuid.uuid4().hex, "orphan"))


def test_csv_output_writes_the_fields_import_reads():
    from itemctl.cli.items import ITEM_CSV_COLUMNS
    from itemctl.models.item import IMPORT_FIELDS

    assert ITEM_CSV_COLUMNS == IMPORT_FIELDS
