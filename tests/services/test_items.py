"""Item rules at the service level, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from itemctl.core.errors import ConflictError, InvalidInput, NotFoundError, PermissionDenied
from itemctl.models import Item, ItemCreate, ItemUpdate, Tag
from itemctl.services import items, reads
from itemctl.services.common import validated
from itemctl.services.reads import ItemFilters
from itemctl.store.driver import Reader


def db(session) -> Reader:
    """The read commands' connection: the session's own, in its transaction."""
    return Reader.of(session.connection())


def test_create_belongs_to_the_actor_with_sorted_tags(session, alice, make_item):
    item = make_item(alice, "  Report  ", "urgent", "Ops", "ops")
    assert (item.title, item.owner, item.tags) == ("Report", "alice", ["Ops", "urgent"])


def test_tags_match_case_insensitively_and_keep_the_first_spelling(session, alice, make_item):
    make_item(alice, "one", "Ops")
    two = make_item(alice, "two", "OPS")
    assert two.tags == ["Ops"]
    assert len(session.exec(select(Tag)).all()) == 1


def test_duplicate_title_for_the_same_owner_is_a_conflict(session, alice, bob, make_item):
    make_item(alice, "Report")
    with pytest.raises(ConflictError, match="already exists for alice"):
        make_item(alice, "Report")
    assert make_item(bob, "Report").owner == "bob"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"title": "ok", "description": "d" * 1001}, "description"),
        ({"title": "ok", "tags": ["a,b"]}, "tags"),
        ({"title": "ok", "tags": ["x" * 65]}, "tags"),
        ({"title": "nul\x00"}, "title"),
    ],
)
def test_invalid_input_names_the_field(data, field):
    with pytest.raises(InvalidInput) as raised:
        validated(ItemCreate, data)
    assert raised.value.message.startswith(f"invalid {field}")


def test_limits_are_inclusive():
    item = validated(ItemCreate, {"title": "t" * 255, "description": "d" * 1000, "tags": ["x" * 64]})
    assert len(item.title) == 255


def test_only_admins_create_for_another_owner(session, alice, bob, admin):
    item_in = ItemCreate(title="For bob")
    with pytest.raises(PermissionDenied, match="admin"):
        items.create_item(session=session, actor=alice, item_in=item_in, owner="bob")
    created = items.create_item(session=session, actor=admin, item_in=item_in, owner="bob")
    assert created.owner == "bob"
    with pytest.raises(NotFoundError):
        items.create_item(session=session, actor=admin, item_in=item_in, owner="nobody")


@pytest.mark.parametrize("action", ["update", "tag", "untag", "delete"])
def test_users_act_only_on_their_own_items_admins_on_any(session, alice, bob, admin, make_item, action):
    item = make_item(alice, "Mine", "ops")
    ref = str(item.id)

    def act(actor):
        if action == "update":
            return items.update_item(session=session, actor=actor, ref=ref, item_in=ItemUpdate(title="New"))
        if action == "tag":
            return items.tag_item(session=session, actor=actor, ref=ref, names=["x"])
        if action == "untag":
            return items.untag_item(session=session, actor=actor, ref=ref, names=["ops"])
        return items.delete_items(session=session, actor=actor, refs=[ref])

    with pytest.raises(PermissionDenied):
        act(bob)
    act(admin)


@pytest.mark.parametrize("actor_name", ["alice", "admin"])
def test_owner_and_admin_may_update_tag_untag_delete(session, alice, admin, make_item, actor_name):
    actor = {"alice": alice, "admin": admin}[actor_name]
    item = make_item(alice, "Mine", "ops")
    ref = str(item.id)[:8]
    updated = items.update_item(session=session, actor=actor, ref=ref, item_in=ItemUpdate(description="d"))
    assert updated.description == "d" and updated.updated_at >= item.updated_at
    assert items.tag_item(session=session, actor=actor, ref=ref, names=["new"]).tags == ["new", "ops"]
    assert items.untag_item(session=session, actor=actor, ref=ref, names=["OPS"]).tags == ["new"]
    assert [g.id for g in items.delete_items(session=session, actor=actor, refs=[ref])] == [item.id]
    assert session.get(Item, item.id) is None


def test_only_admins_give_an_item_away(session, alice, bob, admin, make_item):
    item = make_item(alice, "Mine")
    with pytest.raises(PermissionDenied):
        items.update_item(session=session, actor=alice, ref=str(item.id), item_in=ItemUpdate(), owner="bob")
    moved = items.update_item(session=session, actor=admin, ref=str(item.id), item_in=ItemUpdate(), owner="bob")
    assert moved.owner == "bob"


def test_renaming_onto_an_existing_title_is_a_conflict(session, alice, make_item):
    make_item(alice, "A")
    b = make_item(alice, "B")
    with pytest.raises(ConflictError):
        items.update_item(session=session, actor=alice, ref=str(b.id), item_in=ItemUpdate(title="A"))


def test_delete_is_all_or_nothing(session, alice, bob, make_item):
    mine, theirs = make_item(alice, "mine"), make_item(bob, "theirs")
    with pytest.raises(PermissionDenied):
        items.delete_items(session=session, actor=alice, refs=[str(mine.id), str(theirs.id)])
    assert session.get(Item, mine.id) is not None


def test_untag_of_an_unknown_tag_is_not_found(session, alice, make_item):
    item = make_item(alice, "x")
    with pytest.raises(NotFoundError):
        items.untag_item(session=session, actor=alice, ref=str(item.id), names=["never-seen"])


# -- ids and prefixes ------------------------------------------------------------------------


def test_prefix_lookup(session, alice, make_item):
    item = make_item(alice, "x")
    assert reads.get_item(db=db(session), ref=str(item.id)[:8])["id"] == str(item.id)
    assert reads.get_item(db=db(session), ref=str(item.id).upper())["id"] == str(item.id)


@pytest.mark.parametrize("ref", ["abc", "zzzzzzzz", "1234567"])
def test_malformed_ids_are_invalid(session, ref):
    with pytest.raises(InvalidInput):
        items.find_item(session, ref)


def test_unknown_prefix_is_not_found(session):
    with pytest.raises(NotFoundError):
        items.find_item(session, "00000000")


def test_ambiguous_prefix_lists_the_candidates(session, alice):
    import uuid

    for suffix in ("1", "2"):
        session.add(Item(id=uuid.UUID(f"abcdef01-0000-4000-8000-00000000000{suffix}"), title=suffix, owner_id=alice.id))
    session.flush()
    with pytest.raises(InvalidInput, match="ambiguous") as raised:
        items.find_item(session, "abcdef01")
    assert "abcdef01-0000-4000-8000-000000000001" in raised.value.message


# -- listing ---------------------------------------------------------------------------------


def listed(session, actor, **kw) -> list[str]:
    filters = ItemFilters(**{k: v for k, v in kw.items() if k in ItemFilters.__dataclass_fields__})
    rest = {k: v for k, v in kw.items() if k not in ItemFilters.__dataclass_fields__}
    return [i["title"] for i in reads.list_items(db=db(session), actor=actor, filters=filters, **rest)]


@pytest.fixture
def catalogue(session, alice, bob, make_item):
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    specs = [
        (alice, "alpha", ["ops", "urgent"]),
        (alice, "Beta 100%", ["ops"]),
        (bob, "gamma_x", ["urgent"]),
        (bob, "delta", []),
    ]
    for n, (owner, title, tags) in enumerate(specs):
        item = make_item(owner, title, *tags)
        row = session.get(Item, item.id)
        row.created_at = base + timedelta(days=n)
        session.add(row)
    session.flush()
    return base


def test_list_is_newest_first_with_filters(session, alice, catalogue):
    assert listed(session, alice) == ["delta", "gamma_x", "Beta 100%", "alpha"]
    assert listed(session, alice, sort="oldest") == ["alpha", "Beta 100%", "gamma_x", "delta"]
    assert listed(session, alice, sort="title") == ["Beta 100%", "alpha", "delta", "gamma_x"]
    assert listed(session, alice, mine=True) == ["Beta 100%", "alpha"]
    assert listed(session, alice, owner="bob") == ["delta", "gamma_x"]
    assert listed(session, alice, tags=["OPS"]) == ["Beta 100%", "alpha"]
    assert listed(session, alice, tags=["ops", "urgent"]) == ["alpha"]
    assert listed(session, alice, tags=["nothing"]) == []
    assert listed(session, alice, created_after=catalogue + timedelta(hours=12)) == ["delta", "gamma_x", "Beta 100%"]
    assert listed(session, alice, created_before=catalogue + timedelta(days=1)) == ["alpha"]


@pytest.mark.parametrize(("text", "expected"), [("BETA", ["Beta 100%"]), ("%", ["Beta 100%"]), ("_", ["gamma_x"]), ("a_x", ["gamma_x"])])
def test_search_is_case_insensitive_and_literal(session, alice, catalogue, text, expected):
    assert listed(session, alice, search=text) == expected


def test_pagination_by_offset_and_by_keyset(session, alice, catalogue):
    assert listed(session, alice, limit=2) == ["delta", "gamma_x"]
    assert listed(session, alice, limit=2, offset=2) == ["Beta 100%", "alpha"]
    page = reads.list_items(db=db(session), actor=alice, filters=ItemFilters(), limit=2)
    assert listed(session, alice, limit=2, after=page[-1]["id"]) == ["Beta 100%", "alpha"]
    for sort in ("oldest", "title"):
        everything = listed(session, alice, sort=sort)
        first = reads.list_items(db=db(session), actor=alice, filters=ItemFilters(), limit=1, sort=sort)
        assert listed(session, alice, sort=sort, after=first[0]["id"]) == everything[1:]


def test_keyset_ties_on_created_at_break_on_id(session, alice, make_item):
    same = datetime(2026, 5, 5, tzinfo=timezone.utc)
    for n in range(5):
        row = session.get(Item, make_item(alice, f"t{n}").id)
        row.created_at = same
        session.add(row)
    session.flush()
    walked, after = [], None
    while True:
        page = reads.list_items(db=db(session), actor=alice, filters=ItemFilters(), limit=2, after=after)
        if not page:
            break
        walked += [i["title"] for i in page]
        after = page[-1]["id"]
    assert sorted(walked) == [f"t{n}" for n in range(5)] and len(walked) == 5


def test_count_uses_the_same_filters(session, alice, catalogue):
    assert reads.count_items(db=db(session), actor=alice, filters=ItemFilters(tags=["urgent"])) == 2
    assert reads.count_items(db=db(session), actor=alice, filters=ItemFilters(mine=True)) == 2


def test_unknown_owner_filter_is_not_found(session, alice):
    with pytest.raises(NotFoundError):
        listed(session, alice, owner="nobody")


def test_timestamps_are_utc(session, alice, make_item):
    item = make_item(alice, "x")
    assert item.created_at.utcoffset() == timedelta(0)


def test_an_explicitly_empty_title_is_invalid_on_update(session, alice, make_item):
    item = make_item(alice, "x")
    with pytest.raises(InvalidInput, match="title"):
        items.update_item(session=session, actor=alice, ref=str(item.id), item_in=ItemUpdate(title=None))
