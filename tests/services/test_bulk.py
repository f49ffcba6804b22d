"""Batch import and export at the service level, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from itemctl.core.errors import ConflictError, InvalidInput, PermissionDenied
from itemctl.models import Item, ItemTag, Tag
from itemctl.services import bulk
from itemctl.services.items import ItemFilters


def as_csv(rows: list[dict], header=("title", "description", "owner", "tags"), bom=False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


def run_import(session, actor, data: bytes, fmt="csv", **options) -> bulk.ImportSummary:
    return bulk.import_items(
        session=session, actor=actor, stream=io.BytesIO(data), options=bulk.ImportOptions(fmt=fmt, **options)
    )


def snapshot(session) -> set[tuple]:
    """owner, title, description and tag set of every item."""
    session.expire_all()
    result = set()
    for item in session.exec(select(Item)).all():
        tags = session.exec(
            select(Tag.name).join(ItemTag, ItemTag.tag_id == Tag.id).where(ItemTag.item_id == item.id)
        ).all()
        owner = item.owner_id
        result.add((owner, item.title, item.description, frozenset(tags)))
    return result


def exported(session, actor, fmt="csv") -> bytes:
    out = io.BytesIO()
    bulk.export_items(session=session, actor=actor, filters=ItemFilters(), out=out, fmt=fmt)
    return out.getvalue()


ROWS = [
    {"title": "one", "description": "first", "tags": "a;B"},
    {"title": "two, with comma", "description": 'quote " and\nnewline', "tags": ""},
    {"title": "Zürich 東京", "description": "", "tags": "b;c"},
]


def test_csv_import_with_tags(session, alice):
    summary = run_import(session, alice, as_csv(ROWS))
    assert summary.counts() == {"read": 3, "inserted": 3, "updated": 0, "skipped": 0, "rejected": 0}
    items = {i.title: i for i in session.exec(select(Item)).all()}
    assert set(items) == {"one", "two, with comma", "Zürich 東京"}
    assert items["two, with comma"].description == 'quote " and\nnewline'
    assert items["Zürich 東京"].description is None
    assert sorted(t.name for t in session.exec(select(Tag)).all()) == ["B", "a", "c"]
    assert len(session.exec(select(ItemTag)).all()) == 4


def test_bom_and_blank_lines_are_accepted(session, alice):
    data = as_csv(ROWS, bom=True).replace(b"\r\n", b"\r\n\r\n", 1)
    assert run_import(session, alice, data).inserted == 3


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_formats(session, alice, fmt):
    records = [{"title": "one", "tags": ["x", "y"]}, {"title": "two", "description": "d", "tags": "x;z"}]
    if fmt == "jsonl":
        data = "\n".join(json.dumps(r) for r in records).encode()
    else:
        data = json.dumps(records, indent=2).encode()
    assert run_import(session, alice, data, fmt=fmt).inserted == 2
    assert sorted(t.name for t in session.exec(select(Tag)).all()) == ["x", "y", "z"]


def test_json_array_errors_name_the_line_the_record_starts_on(session, alice):
    data = b'[\n  {"title": "ok"},\n  {\n    "title": ""\n  }\n]\n'
    with pytest.raises(InvalidInput, match=r"line 3 \(row 2\): title"):
        run_import(session, alice, data, fmt="json")


def test_a_malformed_json_array_is_invalid(session, alice):
    with pytest.raises(InvalidInput, match="line 2"):
        run_import(session, alice, b'[{"title": "a"},\n{"title": }]', fmt="json")
    with pytest.raises(InvalidInput, match="array"):
        run_import(session, alice, b'{"title": "a"}', fmt="json")


def test_insert_mode_conflicts_and_nothing_changes(session, alice):
    run_import(session, alice, as_csv(ROWS))
    before = snapshot(session)
    with pytest.raises(ConflictError, match=r"line 2 \(row 1\): item 'one' already exists"):
        run_import(session, alice, as_csv(ROWS + [{"title": "new"}]))
    assert snapshot(session) == before


def test_skip_mode_leaves_existing_items(session, alice):
    run_import(session, alice, as_csv(ROWS))
    changed = [dict(r, description="changed") for r in ROWS] + [{"title": "new", "tags": "a;new"}]
    summary = run_import(session, alice, as_csv(changed), mode="skip")
    assert (summary.inserted, summary.updated, summary.skipped) == (1, 0, 3)
    assert {i.description for i in session.exec(select(Item)).all()} == {"first", 'quote " and\nnewline', None}


def test_upsert_replaces_description_and_tags_of_exactly_the_changed(session, alice):
    run_import(session, alice, as_csv(ROWS))
    rows = [dict(ROWS[0], description="edited"), dict(ROWS[1]), dict(ROWS[2], tags="c;D"), {"title": "new"}]
    summary = run_import(session, alice, as_csv(rows), mode="upsert")
    assert (summary.inserted, summary.updated, summary.skipped) == (1, 2, 1)
    tags = {
        title: sorted(n for (_, t, _, names) in snapshot(session) if t == title for n in names)
        for title in ("one", "Zürich 東京")
    }
    assert tags == {"one": ["B", "a"], "Zürich 東京": ["D", "c"]}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"title": "ok", "description": "d" * 1001}, "description"),
        ({"title": "ok", "tags": "a,b"}, "tags"),
        ({"title": "ok", "owner": "bad owner"}, "owner"),
    ],
)
def test_an_invalid_row_names_line_and_field_and_writes_nothing(session, alice, row, reason):
    with pytest.raises(InvalidInput) as raised:
        run_import(session, alice, as_csv([ROWS[0], row]))
    assert f"line 3 (row 2): {reason}" in raised.value.message
    assert session.exec(select(Item)).all() == []


def test_unknown_fields_are_invalid(session, alice):
    with pytest.raises(InvalidInput, match="unknown field 'colour'"):
        run_import(session, alice, as_csv([{"title": "x"}], header=("title", "colour")))
    with pytest.raises(InvalidInput, match="line 1: colour: unknown field"):
        run_import(session, alice, b'{"title": "x", "colour": "red"}', fmt="jsonl")


def test_unknown_owner_and_duplicates_within_the_input(session, admin):
    rows = [{"title": "a"}, {"title": "b", "owner": "ghost"}, {"title": "a"}]
    with pytest.raises(InvalidInput) as raised:
        run_import(session, admin, as_csv(rows))
    message = raised.value.message
    assert "line 3 (row 2): owner: unknown user 'ghost'" in message
    assert "line 4 (row 3): title: 'a' for owner 'admin' is also on line 2" in message


@pytest.mark.parametrize("mode", ["insert", "skip", "upsert"])
@pytest.mark.parametrize("existing", [False, True], ids=["new items", "existing items"])
def test_a_repeated_row_alone_is_invalid_in_every_mode(session, alice, mode, existing):
    """Whether or not the repeated item exists already: never one of the two at random."""
    if existing:
        run_import(session, alice, as_csv([{"title": "a", "tags": "keep"}]))
    rows = [{"title": "a", "tags": "x"}, {"title": "b"}, {"title": "a", "description": "again", "tags": "x"}]
    with pytest.raises(InvalidInput) as raised:
        run_import(session, alice, as_csv(rows), mode=mode)
    assert "line 4 (row 3): title: 'a' for owner 'alice' is also on line 2" in raised.value.message
    assert [(i.title, i.description) for i in session.exec(select(Item)).all()] == ([("a", None)] if existing else [])
    if not (existing and mode == "insert"):  # without the repeat, the file imports
        assert run_import(session, alice, as_csv(rows[:2]), mode=mode).read == 2


def test_only_the_first_20_errors_are_listed_then_a_count(session, alice):
    rows = [{"title": ""} for _ in range(25)]
    with pytest.raises(InvalidInput) as raised:
        run_import(session, alice, as_csv(rows))
    message = raised.value.message
    assert message.startswith("25 invalid row(s)") and message.endswith("and 5 more")
    assert message.count("title:") == 20


def test_rejects_sets_invalid_rows_aside(session, admin):
    rows = [{"title": "a"}, {"title": ""}, {"title": "b", "owner": "ghost"}, {"title": "a"}, {"title": "c"}]
    out = io.StringIO()
    summary = run_import(session, admin, as_csv(rows), rejects=bulk.Rejects(out))
    assert (summary.read, summary.inserted, summary.rejected) == (5, 2, 3)
    rejected = sorted((r["line"], r["reason"].split(":")[0]) for r in map(json.loads, out.getvalue().splitlines()))
    assert rejected == [(3, "title"), (4, "owner"), (5, "title")]
    assert all("record" in json.loads(line) for line in out.getvalue().splitlines())


def test_importing_for_others_needs_admin(session, alice, bob, admin):
    with pytest.raises(PermissionDenied):
        run_import(session, alice, as_csv([{"title": "x", "owner": "bob"}]))
    with pytest.raises(PermissionDenied):
        run_import(session, alice, as_csv([{"title": "x"}]), owner="bob")
    assert run_import(session, admin, as_csv([{"title": "x", "owner": "bob"}, {"title": "y"}]), owner="alice").inserted == 2
    owners = {i.title: i.owner_id for i in session.exec(select(Item)).all()}
    assert owners == {"x": bob.id, "y": alice.id}


def test_export_then_import_round_trips(session, alice, bob, admin):
    run_import(session, admin, as_csv([dict(r, owner="alice") for r in ROWS] + [{"title": "b1", "owner": "bob", "tags": "x"}]))
    before = snapshot(session)
    for fmt in ("csv", "jsonl"):
        data = exported(session, admin, fmt)
        session.execute(Item.__table__.delete())
        run_import(session, admin, data, fmt=fmt)
        assert snapshot(session) == before, fmt


def test_exclusive_gives_the_same_rows(session, alice):
    """--exclusive locks and drops foreign keys on PostgreSQL only; on SQLite it is a
    normal import. Either way the rows are the same, and only PostgreSQL says it locks."""
    said: list[str] = []
    summary = run_import(session, alice, as_csv(ROWS), exclusive=True, on_notice=said.append)
    assert summary.inserted == 3 and len(session.exec(select(ItemTag)).all()) == 4
    postgres = session.get_bind().dialect.name == "postgresql"
    assert any("locking tables item and item_tag" in line for line in said) is postgres
    if postgres:  # the foreign keys it dropped are back
        count = session.connection().exec_driver_sql(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('item'::regclass, 'item_tag'::regclass)"
        )
        assert count.scalar() == 3


# -- properties ---------------------------------------------------------------------------------

# Text as the rules accept and store it (contract §1): no control characters or
# bidirectional overrides (a description may hold newlines and tabs), in NFC.
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
TEXT = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=BIDI)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


title = st.text(TEXT, min_size=1, max_size=40).map(nfc).filter(lambda t: t.strip() == t and t)
description = st.one_of(st.none(), st.text(st.one_of(TEXT, st.sampled_from("\n\t")), min_size=1, max_size=60).map(nfc))
tag = (
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf"), blacklist_characters=BIDI + ",;"), min_size=1, max_size=10)
    .map(nfc)
    .filter(lambda t: t.strip() == t and t)
)
record = st.fixed_dictionaries({"title": title, "description": description, "tags": st.lists(tag, max_size=3)})
records = st.lists(record, min_size=1, max_size=15, unique_by=lambda r: r["title"])
@contextmanager
def undone(session):
    """Whatever the block writes is rolled back (each hypothesis example starts clean)."""
    savepoint = session.begin_nested()
    session.connection()  # emit the SAVEPOINT now
    try:
        yield
    finally:
        savepoint.rollback()


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def tag_sets_by_title(session) -> dict[str, frozenset[str]]:
    return {t: frozenset(n.lower() for n in names) for (_, t, _, names) in snapshot(session)}


@SETTINGS
@given(rows=records, fmt=st.sampled_from(["csv", "jsonl"]), bom_prefix=st.booleans())
def test_export_import_round_trip_property(session, alice, rows, fmt, bom_prefix):
    if bom_prefix:  # a title that looks like a byte-order mark must survive too
        rows = [dict(rows[0], title="\ufeff" + rows[0]["title"])] + rows[1:]
    with undone(session):
        run_import(session, alice, "\n".join(json.dumps(r) for r in rows).encode(), fmt="jsonl")
        before = snapshot(session)
        data = exported(session, alice, fmt)
        session.execute(Item.__table__.delete())
        run_import(session, alice, data, fmt=fmt)
        assert snapshot(session) == before


@SETTINGS
@given(rows=records, data=st.data())
def test_bad_rows_are_reported_exactly_and_rejected_exactly(session, alice, rows, data):
    bad_positions = sorted(data.draw(st.sets(st.integers(0, len(rows) - 1), min_size=1, max_size=len(rows))))
    for position in bad_positions:
        rows[position] = dict(rows[position], description="x" * 1001)
    payload = "\n".join(json.dumps(r) for r in rows).encode()
    expected_lines = [p + 1 for p in bad_positions]

    with undone(session):
        with pytest.raises(InvalidInput) as raised:
            run_import(session, alice, payload, fmt="jsonl")
        listed = raised.value.message.split(": ", 1)[1].split("; ")
        assert [int(part.split(":")[0].split()[1]) for part in listed] == expected_lines[:20]
        out = io.StringIO()
        summary = run_import(session, alice, payload, fmt="jsonl", rejects=bulk.Rejects(out))
        assert [json.loads(line)["line"] for line in out.getvalue().split("\n") if line] == expected_lines
        assert summary.inserted == len(rows) - len(bad_positions)
        good = {r["title"] for i, r in enumerate(rows) if i not in bad_positions}
        assert {t for (_, t, _, _) in snapshot(session)} == good


def test_a_repeat_in_a_one_line_json_array_is_set_aside_by_rejects(session, alice):
    """Records of a JSON array share a line; a repeat is still told apart and rejected."""
    out = io.StringIO()
    data = b'[{"title": "a", "tags": ["x"]}, {"title": "b"}, {"title": "a", "tags": ["x"]}]'
    summary = run_import(session, alice, data, fmt="json", rejects=bulk.Rejects(out))
    assert (summary.read, summary.inserted, summary.skipped, summary.rejected) == (3, 2, 0, 1)
    (reject,) = map(json.loads, out.getvalue().splitlines())
    assert (reject["line"], reject["row"], reject["record"]) == (1, 3, {"title": "a", "tags": ["x"]})
    with pytest.raises(InvalidInput) as raised:
        run_import(session, alice, data.replace(b'"a"', b'"c"'), fmt="json")
    assert "line 1 (row 3): title: 'c' for owner 'alice' is also on line 1" in raised.value.message


def test_upsert_leaves_alone_what_the_input_does_not_have(session, alice):
    """A column missing from the file (a key absent from the object) keeps the stored
    value; an empty value clears it."""
    run_import(session, alice, as_csv([{"title": "a", "description": "keep me", "tags": "x;y"}]))
    only_tags = run_import(session, alice, as_csv([{"title": "a", "tags": "z"}], header=("title", "tags")), mode="upsert")
    assert only_tags.updated == 1
    only_description = run_import(session, alice, b'{"title": "a", "description": "new"}\n', fmt="jsonl", mode="upsert")
    assert only_description.updated == 1
    (item,) = [(t, d, frozenset(n)) for (_, t, d, n) in snapshot(session)]
    assert item == ("a", "new", frozenset({"z"}))
    cleared = run_import(session, alice, b'{"title": "a", "description": "", "tags": []}\n', fmt="jsonl", mode="upsert")
    assert cleared.updated == 1
    assert [(t, d, frozenset(n)) for (_, t, d, n) in snapshot(session)] == [("a", None, frozenset())]
    unchanged = run_import(session, alice, as_csv([{"title": "a"}], header=("title",)), mode="upsert")
    assert (unchanged.updated, unchanged.skipped) == (0, 1)


def test_a_one_line_json_array_of_many_records_imports_every_one(session, alice):
    data = json.dumps([{"title": f"t{i}"} for i in range(2500)]).encode()
    assert run_import(session, alice, data, fmt="json").inserted == 2500
    assert len(session.exec(select(Item)).all()) == 2500


def test_a_malformed_element_of_a_large_json_array_is_named_in_flat_memory(backend, tmp_path):
    """The reader stops a megabyte past a malformed element instead of reading the rest of
    a 200 MB array into memory, and names the element. The peak is measured in a fresh
    process of its own, which no earlier test's memory can hide."""
    import os
    import subprocess
    import sys

    from tests.conftest import process_env

    path = tmp_path / "big.json"
    with open(path, "w") as out:
        out.write('[{"title": "first"},\n{"title": "broken" "oops"},\n')
        row = '{"title": "filler", "description": "' + "x" * 900 + '"},\n'
        for _ in range(200 * 1024 * 1024 // len(row)):
            out.write(row)
        out.write('{"title": "last"}]\n')
    # The peak is read from /proc as the process ends (VmHWM belongs to the process's own
    # memory since its exec); wait4's ru_maxrss would also count the pages of the test
    # process it was forked from, however large that has grown by then.
    child = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('peak', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')), file=sys.stderr))\n"
        f"sys.argv = ['itemctl', '--database-url', {backend.url!r}, '--as', 'alice', 'items', 'import', {str(path)!r}]\n"
        "runpy.run_module('itemctl', run_name='__main__')\n"
    )
    completed = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=process_env(), timeout=120)
    stderr = completed.stderr
    peak_mb = int(stderr.strip().splitlines()[-1].split()[1]) / 1024
    assert completed.returncode == 6, stderr
    assert "line 2: element 2 of the JSON array is not valid JSON" in stderr
    assert peak_mb < 150, f"peak memory {peak_mb:.0f} MB for a 200 MB file"
    assert backend.rows("SELECT count(*) FROM item") == [(0,)]


def test_a_file_of_mostly_distinct_tags_keeps_the_lookups_bounded(session, alice, monkeypatch):
    """The direct load forgets its owner and tag ids past a limit (flat memory) and looks
    the names of the current batch up again; nothing is created twice or lost."""
    from itemctl.services.bulk import direct

    monkeypatch.setattr(direct, "CACHE_LIMIT", 5)
    rows = [{"title": f"r{i}", "tags": f"shared;own{i};Own{i}"} for i in range(2500)]
    summary = run_import(session, alice, as_csv(rows))
    assert summary.inserted == 2500
    names = set(session.exec(select(Tag.name)).all())
    assert names == {"shared"} | {f"own{i}" for i in range(2500)}
    assert len(session.exec(select(ItemTag)).all()) == 5000


def test_an_admin_no_longer_admin_when_the_lock_is_taken_imports_only_their_own(session, admin, alice):
    from itemctl.models import User

    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("only SQLite takes the write lock after staging")
    # What the command's lock-taking function returns: the actor as it is by then.
    session.info[bulk.TAKE_WRITE_LOCK] = lambda: User(id=admin.id, username="admin", is_admin=False)
    rows = as_csv([{"title": "mine", "owner": "admin"}, {"title": "hers", "owner": "alice"}])
    with pytest.raises(PermissionDenied, match=r"line 3 \(row 2\): only an admin may import items for another user \(owner 'alice'"):
        run_import(session, admin, rows)
    assert session.exec(select(Item)).all() == []
