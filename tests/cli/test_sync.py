"""`items import --mode sync`: a nightly mirror of another team's export, on both backends."""

from __future__ import annotations

import json


def test_sync_makes_one_owners_items_equal_to_the_file(any_itemctl, tmp_path):
    def itemctl(*args):
        result = any_itemctl("--as", "root", *args)
        return result.exit_code, result.stdout, result.stderr

    def titles(owner):
        return sorted((i["title"], i["description"]) for i in json.loads(itemctl("items", "list", "--owner", owner, "-o", "json")[1]))

    def write(name, text):
        (tmp_path / name).write_text(text)
        return str(tmp_path / name)

    itemctl("users", "create", "root", "--admin")
    itemctl("users", "create", "team")
    itemctl("items", "create", "someone else's", "--owner", "root")
    monday = write("monday.csv", "title,description,tags\nkeep,same,a\nchange,old,b\ngone,soon,\n")
    tuesday = write("tuesday.csv", "title,description,tags\nkeep,same,a\nchange,new,c\nfresh,made,\n")

    code, out, err = itemctl("items", "import", monday, "--mode", "sync", "--owner", "team", "-o", "json")
    assert code == 0 and json.loads(out)["inserted"] == 3 and json.loads(out)["deleted"] == 0, err

    code, out, err = itemctl("items", "import", tuesday, "--mode", "sync", "--owner", "team", "--dry-run", "-o", "json")
    shown = json.loads(out)
    assert code == 0 and (shown["deleted"], shown["would_delete"], shown["dry_run"]) == (1, ["gone"], True), out
    assert "would delete: gone" in err
    assert titles("team") == [("change", "old"), ("gone", "soon"), ("keep", "same")]  # a dry run changes nothing

    code, out, err = itemctl("items", "import", tuesday, "--mode", "sync", "--owner", "team", "-o", "json")
    assert code == 0 and json.loads(out) == {"read": 3, "inserted": 1, "updated": 1, "skipped": 1, "rejected": 0, "deleted": 1}, out
    assert titles("team") == [("change", "new"), ("fresh", "made"), ("keep", "same")]
    assert titles("root") == [("someone else's", None)]  # another owner's items are never touched
    entry = json.loads(itemctl("audit", "list", "--action", "items.import", "--limit", "1", "-o", "json")[1])[0]
    assert entry["details"]["mode"] == "sync" and entry["details"]["deleted"] == 1

    empty = write("empty.csv", "title,description,tags\n")
    code, _, err = itemctl("items", "import", empty, "--mode", "sync", "--owner", "team")
    assert code == 6 and "--allow-empty" in err and len(titles("team")) == 3, err
    other = write("other.csv", "title,owner\nx,root\n")
    code, _, err = itemctl("items", "import", other, "--mode", "sync", "--owner", "team")
    assert code == 2 and "owner 'root' is not 'team'" in err, err
    code, _, err = itemctl("items", "import", tuesday, "--mode", "sync")
    assert code == 2 and "--mode sync needs --owner" in err, err
    code, _, err = itemctl("items", "import", empty, "--mode", "sync", "--owner", "team", "--allow-empty")
    assert code == 0 and titles("team") == [], err


def test_sync_keeps_an_item_whose_row_was_rejected_and_refuses_a_row_of_an_unknown_owner(any_itemctl, tmp_path):
    """The file lists an item whose row was set aside (--rejects): sync leaves it as it is,
    never deletes it. A row naming any other owner, known or not, is exit 2."""

    def itemctl(*args):
        result = any_itemctl("--as", "root", *args)
        return result.exit_code, result.stdout, result.stderr

    def titles():
        return sorted((i["title"], i["description"]) for i in json.loads(itemctl("items", "list", "--owner", "team", "-o", "json")[1]))

    itemctl("users", "create", "root", "--admin")
    itemctl("users", "create", "team")
    for title in ("kept", "gone"):
        itemctl("items", "create", title, "--owner", "team", "--description", "precious")
    nightly = tmp_path / "nightly.csv"
    nightly.write_text("title,description,tags\nfresh,x,\n kept ,changed,bad\x1btag\n")
    for dry_run in (["--dry-run"], []):
        code, out, err = itemctl("items", "import", str(nightly), "--mode", "sync", "--owner", "team",
                                 "--rejects", str(tmp_path / "rejects.jsonl"), "-o", "json", *dry_run)
        summary = json.loads(out)
        assert code == 0 and (summary["rejected"], summary["deleted"]) == (1, 1), (out, err)
        assert summary.get("would_delete", ["gone"]) == ["gone"], out
    assert titles() == [("fresh", "x"), ("kept", "precious")]

    unknown = tmp_path / "unknown.csv"
    unknown.write_text("title,owner\nfresh,team\nother,nobody\n")
    code, _, err = itemctl("items", "import", str(unknown), "--mode", "sync", "--owner", "team", "--rejects", str(tmp_path / "r.jsonl"))
    assert code == 2 and "owner 'nobody' is not 'team'" in err, err
    assert titles() == [("fresh", "x"), ("kept", "precious")]


def test_an_import_for_an_owner_who_does_not_exist_is_exit_3_before_any_row(any_itemctl, tmp_path):
    any_itemctl("--as", "root", "users", "create", "root", "--admin")
    rows = tmp_path / "rows.csv"
    rows.write_text("title\none\ntwo\n")
    for extra in ([], ["--rejects", str(tmp_path / "r.jsonl")], ["--mode", "sync"], ["--mode", "upsert", "--dry-run"]):
        result = any_itemctl("--as", "root", "items", "import", str(rows), "--owner", "ghost", *extra)
        assert result.exit_code == 3 and result.stderr.startswith("error: user 'ghost' not found"), (extra, result.stderr)
    assert not (tmp_path / "r.jsonl").exists()
    assert any_itemctl("--as", "root", "items", "count").stdout == "0\n"


def test_sync_keeps_items_of_rows_set_aside_in_any_shape_and_refuses_another_owners_invalid_row(any_itemctl, backend, tmp_path):
    """A record naming a key twice and a CSV row with a field too many still list their
    titles; another owner's row is exit 2 even when it is invalid too."""
    from sqlalchemy import create_engine, text

    engine = create_engine(backend.url)
    with engine.begin() as connection:  # a table of the user's that happens to share a name itemctl uses
        connection.execute(text("CREATE TABLE import_kept (note text)"))
    engine.dispose()
    any_itemctl("--as", "root", "users", "create", "root", "--admin")
    any_itemctl("--as", "root", "users", "create", "bob")
    for title in ("a", "b", "c", "gone"):
        any_itemctl("--as", "root", "items", "create", title, "--owner", "root")
    jsonl = tmp_path / "n.jsonl"
    jsonl.write_text('{"title": "a"}\n{"title": "b", "tags": ["y"], "tags": ["q"]}\n')
    csv = tmp_path / "n.csv"
    csv.write_text("title,description,tags\na,,\nc,,y,extra\n")
    for source in (jsonl, csv):
        result = any_itemctl("--as", "root", "items", "import", str(source), "--mode", "sync", "--owner", "root",
                             "--rejects", str(tmp_path / "r.jsonl"), "--dry-run", "-o", "json")
        summary = json.loads(result.stdout)
        assert result.exit_code == 0 and summary["rejected"] == 1, result.stderr
        kept = "b" if source is jsonl else "c"
        assert kept not in summary["would_delete"] and "gone" in summary["would_delete"], (source.name, summary)
    other = tmp_path / "other.csv"
    other.write_text("title,owner,tags\na,root,\nb,bob," + "t" * 70 + "\n")
    result = any_itemctl("--as", "root", "items", "import", str(other), "--mode", "sync", "--owner", "root", "--rejects", str(tmp_path / "r.jsonl"))
    assert result.exit_code == 2 and "owner 'bob' is not 'root'" in result.stderr, result.stderr
    assert backend.rows("SELECT count(*) FROM import_kept") == [(0,)]  # the user's own table is still there
