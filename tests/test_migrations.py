"""The migration scripts themselves (pytest-alembic adds its built-in checks beside these)."""

from __future__ import annotations

import pytest

from itemctl.models import KNOWN_REVISIONS, SCHEMA_HEAD
from itemctl.services import schema as migrate


def test_models_name_the_newest_revision_and_every_known_one():
    # Commands compare SCHEMA_HEAD with the database without loading Alembic, and tell a
    # newer database from an older one by KNOWN_REVISIONS.
    assert migrate.head_revision() == SCHEMA_HEAD
    assert KNOWN_REVISIONS == tuple(migrate.history_order())


def test_the_embedded_sqlite_database_migrates_and_matches_the_models(sqlite_engine):
    result = migrate.check(sqlite_engine)
    assert result.current == SCHEMA_HEAD and result.differences == []


# -- 0004: the text rules brought to existing rows ---------------------------------------------

NFD_CAFE = "Cafe\u0301"  # as a Mac types it
NFC_CAFE = "Caf\u00e9"


@pytest.fixture(params=["postgresql", "sqlite"])
def at_0003(request, tmp_path):
    """An engine on a database at revision 0003 (before the text rules)."""
    from itemctl.core.config import DatabaseTarget
    from itemctl.core.db import create_db_engine

    if request.param == "postgresql":
        url = request.getfixturevalue("make_database")(revision="0003")
    else:
        url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_db_engine(DatabaseTarget(url, "test"))
    if request.param == "sqlite":
        migrate.migrate(engine, revision="0003")
    yield engine
    engine.dispose()


def _insert(engine, *titles: str, tags=(), emails=()):
    import uuid

    from sqlalchemy import text

    with engine.begin() as conn:
        owner = uuid.uuid4().hex
        conn.execute(text('INSERT INTO "user" (id, username, is_admin, created_at) VALUES (:id, \'old\', false, CURRENT_TIMESTAMP)'), {"id": owner})
        for title in titles:
            conn.execute(
                text("INSERT INTO item (id, title, owner_id, created_at, updated_at) VALUES (:id, :t, :o, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"id": uuid.uuid4().hex, "t": title, "o": owner},
            )
        for name in tags:
            conn.execute(text("INSERT INTO tag (id, name) VALUES (:id, :n)"), {"id": uuid.uuid4().hex, "n": name})
        for n, email in enumerate(emails):
            conn.execute(
                text('INSERT INTO "user" (id, username, email, is_admin, created_at) VALUES (:id, :u, :e, false, CURRENT_TIMESTAMP)'),
                {"id": uuid.uuid4().hex, "u": f"user{n}", "e": email},
            )


def test_0004_normalises_existing_text_to_nfc(at_0003):
    from sqlalchemy import text

    _insert(at_0003, NFD_CAFE, tags=[f"{NFD_CAFE}-tag"])
    migrate.migrate(at_0003)
    with at_0003.connect() as conn:
        assert conn.execute(text("SELECT title FROM item")).scalar() == NFC_CAFE
        assert conn.execute(text("SELECT name FROM tag")).scalar() == f"{NFC_CAFE}-tag"


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ({"titles": [NFD_CAFE, NFC_CAFE]}, "titles of one owner"),
        ({"tags": ["\u00c4rger-" + NFD_CAFE, "\u00e4rger-" + NFC_CAFE]}, "tags"),
        ({"emails": ["Alice@example.com", "alice@example.com"]}, "emails"),
    ],
)
def test_0004_reports_a_collision_and_changes_nothing(at_0003, rows, named):
    from itemctl.core.errors import SchemaError

    _insert(at_0003, *rows.get("titles", []), tags=rows.get("tags", []), emails=rows.get("emails", []))
    with pytest.raises(SchemaError) as raised:
        migrate.migrate(at_0003)
    assert named in raised.value.message and "the schema is unchanged" in raised.value.message
    assert migrate.current(at_0003) == "0003"


# -- 0005: another writer need not name the timestamps ------------------------------------------


@pytest.mark.parametrize("engine_fixture", ["pg_engine", "sqlite_engine"])
def test_the_database_fills_in_timestamps_for_other_writers(request, engine_fixture, run):
    import uuid

    from sqlalchemy import text

    engine = request.getfixturevalue(engine_fixture)
    owner = uuid.uuid4().hex
    with engine.begin() as conn:  # as psql or the web service would: no timestamps given
        conn.execute(text('INSERT INTO "user" (id, username, is_admin) VALUES (:id, \'web\', false)'), {"id": owner})
        conn.execute(
            text("INSERT INTO item (id, title, owner_id) VALUES (:id, 'from elsewhere', :owner)"),
            {"id": uuid.uuid4().hex, "owner": owner},
        )
    listed = run("--database-url", str(engine.url.render_as_string(hide_password=False)), "--as", "web", "items", "list", "-o", "json")
    assert listed.exit_code == 0, listed
    (item,) = listed.json()
    assert item["created_at"].endswith("Z") and item["created_at"] == item["updated_at"]
    assert run("--database-url", engine.url.render_as_string(hide_password=False), "items", "list", "--created-after", "1h", "-o", "id").stdout.strip() == item["id"]


def test_0005_goes_down_and_up_again_on_sqlite(sqlite_engine):
    migrate.downgrade(sqlite_engine, revision="0004")
    assert migrate.migrate(sqlite_engine).applied[0] == "0005"
    assert migrate.check(sqlite_engine).ok


# -- 0006: İ folds to i on both backends -------------------------------------------------------


def test_dotted_capital_i_is_one_tag_with_i_on_both_backends(any_itemctl):
    assert any_itemctl("--as", "root", "tags", "create", "İstanbul").exit_code == 0
    twin = any_itemctl("--as", "root", "tags", "create", "istanbul")
    assert twin.exit_code == 4 and "already exists" in twin.stderr, twin
    assert any_itemctl("--as", "root", "items", "create", "trip", "--tag", "ISTANBUL", "-o", "json").json()["tags"] == ["İstanbul"]


def test_0006_refuses_sqlite_tags_it_would_merge_and_reindexes_the_rest(sqlite_engine):
    import sqlite3
    import uuid

    from sqlalchemy import text

    migrate.downgrade(sqlite_engine, revision="0005")
    # Written by an itemctl of 0005, whose lower() kept İ apart from i.
    older = sqlite3.connect(sqlite_engine.url.database)
    older.create_function("lower", 1, lambda v: "".join(c.lower() if len(c.lower()) == 1 else c for c in v), deterministic=True)
    with older:
        for name in ("İ", "i", "İzmir"):
            older.execute("INSERT INTO tag (id, name) VALUES (?, ?)", (uuid.uuid4().hex, name))
    older.close()
    with pytest.raises(Exception, match="'\\\\u0130', 'i'|'i', '\\\\u0130'"):
        migrate.migrate(sqlite_engine)
    assert migrate.current(sqlite_engine) == "0005"
    with sqlite_engine.begin() as conn:
        conn.execute(text("DELETE FROM tag WHERE name = 'i'"))
    assert migrate.migrate(sqlite_engine).applied == ["0006"]
    with sqlite_engine.connect() as conn:  # the index agrees with the folding now in use
        assert conn.execute(text("SELECT name FROM tag WHERE lower(name) = 'izmir'")).scalar_one() == "İzmir"
        assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
