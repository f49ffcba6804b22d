"""The same answer on every backend (contract §1, §5, §6): SQLite and PostgreSQL side by side.

One hostile-text file is imported into both; their exports must be byte-identical and
their listings equal field by field (ids and times aside, which each database makes).
"""

from __future__ import annotations

import json

import pytest

HOSTILE_RECORDS = [
    {"title": "Cafe\u0301 (typed on a Mac)", "tags": ["Ärger", "ops"]},
    {"title": "Zürich office", "description": "line one\r\nline two\twith a tab", "tags": ["ärger"]},
    {"title": "[bold]x[/bold] and [/x]", "description": "markup, never rendered", "tags": ["ÄRGER", "Ops"]},
    {"title": 'quotes "double" and \'single\', commas', "description": None, "tags": []},
    {"title": "100% _literal_ \\ back", "description": "%_\\", "tags": ["percent%"]},
    {"title": "עברית and العربية text", "tags": ["ΣΊΣΥΦΟΣ"]},
    {"title": "emoji 🙂 and zero\u200bwidth", "tags": ["σίσυφος"]},
    {"title": "x" * 255, "description": "y" * 1000, "tags": ["t" * 64]},
    {"title": "Straße", "tags": ["STRASSE"]},
]


@pytest.fixture
def both(run, pg_url, sqlite_database):
    """Run the same itemctl command against PostgreSQL and SQLite; (pg, sqlite) results."""
    sqlite_url = sqlite_database("parity.db")

    def call(*args: str, input: str = ""):
        return tuple(run("--database-url", url, "--as", "alice", *args, input=input) for url in (pg_url, sqlite_url))

    return call


def test_the_same_hostile_file_exports_byte_identically(both, tmp_path):
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in HOSTILE_RECORDS) + "\n", encoding="utf-8")
    for result in both("items", "import", str(path)):
        assert result.exit_code == 0, result
    for fmt in ("csv", "jsonl"):
        pg, sqlite = both("items", "export", "--format", fmt)
        assert pg.exit_code == sqlite.exit_code == 0
        assert pg.stdout == sqlite.stdout, fmt
    assert "\r" not in pg.stdout  # \n line endings, and \r\n stored as \n
    pg, sqlite = both("items", "list", "-o", "json", "--sort", "title")
    volatile = ("id", "created_at", "updated_at")
    strip = lambda items: [{k: v for k, v in item.items() if k not in volatile} for item in items]  # noqa: E731
    assert strip(pg.json()) == strip(sqlite.json())
    assert len(pg.json()) == len(HOSTILE_RECORDS)
    # One tag per name in any case and any script, on both.
    pg_tags, sqlite_tags = both("tags", "list", "-o", "json")
    assert pg_tags.json() == sqlite_tags.json()
    names = [t["name"] for t in pg_tags.json()]
    assert names.count("Ärger") == 1 and not {"ärger", "ÄRGER"} & set(names)
    # lower() works letter by letter, so a final sigma folds to σ, not ς: two tags.
    assert {"σίσυφος", "ΣΊΣΥΦΟΣ"} <= set(names)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["items", "count", "--tag", "ÄRGER"], "3"),
        (["items", "count", "--search", "ZÜRICH"], "1"),
        (["items", "count", "--search", "café"], "1"),  # NFC on both sides
        (["items", "count", "--search", "%"], "1"),  # literally
        (["items", "count", "--tag", "Ops"], "2"),
    ],
)
def test_case_folding_and_nfc_agree(both, tmp_path, args, expected):
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in HOSTILE_RECORDS) + "\n", encoding="utf-8")
    both("items", "import", str(path))
    pg, sqlite = both(*args)
    assert (pg.exit_code, pg.stdout.strip()) == (0, expected), pg
    assert (sqlite.exit_code, sqlite.stdout.strip()) == (0, expected), sqlite


@pytest.mark.parametrize(
    "args",
    [
        ["tags", "create", "ärger"],
        ["items", "create", "Cafe\u0301 (typed on a Mac)"],
    ],
)
def test_the_same_conflicts_on_both(both, tmp_path, args):
    """Ärger then ärger: one tag; Café typed in NFD then NFC: one title."""
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in HOSTILE_RECORDS) + "\n", encoding="utf-8")
    both("items", "import", str(path))
    pg, sqlite = both(*args[:-1], args[-1].replace("Cafe\u0301", "Caf\u00e9"))
    assert pg.exit_code == sqlite.exit_code == 4, (pg, sqlite)


def test_control_characters_are_refused_naming_field_and_character(both):
    for args, field, shown in (
        (["items", "create", "bell\x07 esc\x1b[31mRED"], "title", "\\x07"),
        (["items", "create", "ok", "--description", "carriage\rreturn"], "description", "\\r"),
        (["tags", "create", "bidi\u202eevil"], "tag", "\\u202e"),
        (["items", "create", "ok", "--tag", "tab\there"], "tag", "\\t"),
    ):
        for result in both(*args):
            assert result.exit_code == 6, result
            assert field in result.stderr and shown in result.stderr, result
            assert "\x1b" not in result.stderr and "\x07" not in result.stderr
