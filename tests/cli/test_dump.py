"""``db dump`` and ``db restore`` (contract §4): an exact copy between any two databases."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_parity import HOSTILE_RECORDS


@pytest.fixture
def sqlite_url(sqlite_database):
    return sqlite_database


def fill(run, url: str, tmp_path) -> None:
    """Users (one admin, emails), tags in several scripts and cases, hostile items."""
    path = tmp_path / "fill.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in HOSTILE_RECORDS) + "\n", encoding="utf-8")
    for args in (
        ["--as", "root", "users", "create", "root", "--admin", "--email", "root@example.com"],
        ["--as", "root", "users", "create", "bob"],
        ["--as", "root", "items", "import", str(path), "--owner", "bob"],
        ["--as", "root", "items", "create", "root's own", "--description", "multi\nline", "--tag", "ops"],
        ["--as", "root", "tags", "create", "unused"],
    ):
        assert run("--database-url", url, *args).exit_code == 0, args


@pytest.mark.parametrize("direction", ["sqlite to postgresql", "postgresql to sqlite"])
def test_a_dump_restores_across_backends_and_dumps_to_the_same_bytes(run, pg_url, sqlite_url, tmp_path, direction):
    source, target = (sqlite_url("source.db"), pg_url) if direction.startswith("sqlite") else (pg_url, sqlite_url("target.db"))
    fill(run, source, tmp_path)
    first = run("--database-url", source, "db", "dump")
    assert first.exit_code == 0, first
    header = json.loads(first.stdout.splitlines()[0])
    assert header == {"format": "itemctl-dump", "version": 2, "revision": header["revision"]}
    assert json.loads(first.stdout.splitlines()[-1]) == {"type": "end", "users": 2, "tags": 8, "items": 10, "links": 11}
    dump_file = tmp_path / "dump.jsonl"
    dump_file.write_text(first.stdout, encoding="utf-8")
    restored = run("--database-url", target, "db", "restore", str(dump_file))
    assert restored.exit_code == 0, restored
    assert "restored 2 user(s), 8 tag(s), 10 item(s)" in restored.stderr
    again = run("--database-url", target, "db", "dump")
    assert again.stdout == first.stdout
    assert run("--database-url", source, "db", "dump").stdout == first.stdout  # nothing volatile
    # The copy is a working database: listings agree, ids included.
    listing = ("--as", "root", "items", "list", "-o", "json", "--sort", "title")
    assert run("--database-url", target, *listing).json() == run("--database-url", source, *listing).json()
    audit = run("--database-url", target, "--as", "root", "audit", "list", "--action", "db.restore", "-o", "json").json()
    assert len(audit) == 1 and audit[0]["details"] == {"user": 2, "tag": 8, "item": 10}


def test_a_corrupted_line_restores_nothing_and_is_named(run, pg_url, sqlite_url, tmp_path):
    source = sqlite_url("source.db")
    fill(run, source, tmp_path)
    lines = run("--database-url", source, "db", "dump").stdout.splitlines()
    lines[6] = lines[6][: len(lines[6]) // 2]  # cut in the middle
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    result = run("--database-url", pg_url, "db", "restore", str(broken))
    assert result.exit_code == 6 and "line 7" in result.stderr, result
    assert run("--database-url", pg_url, "db", "dump").stdout.count("\n") == 2  # the header and the trailer


@pytest.mark.parametrize(
    ("mutate", "code", "named"),
    [
        (lambda lines: lines.__setitem__(0, json.dumps({"format": "itemctl-dump", "version": 1, "revision": "0099"})), 8, "0099"),
        (lambda lines: lines.__setitem__(0, '{"format": "pg_dump"}'), 6, "line 1"),
        (lambda lines: lines.insert(-1, json.dumps({"type": "user", "id": "x"})), 6, "after the items"),
        (lambda lines: lines.append(json.dumps({"type": "user", "id": "x"})), 6, "after its trailer"),
        (lambda lines: lines.insert(1, json.dumps({"type": "tag", "id": "00000000-0000-4000-8000-000000000001", "name": "bad\u001bname"})), 6, "\\x1b"),
    ],
)
def test_a_dump_that_is_not_right_restores_nothing(run, pg_url, sqlite_url, tmp_path, mutate, code, named):
    source = sqlite_url("source.db")
    fill(run, source, tmp_path)
    lines = run("--database-url", source, "db", "dump").stdout.splitlines()
    mutate(lines)
    path = tmp_path / "changed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run("--database-url", pg_url, "db", "restore", str(path))
    assert result.exit_code == code and named in result.stderr, result
    assert run("--database-url", pg_url, "--as", "root", "items", "count").stdout == "0\n"


def test_restore_needs_an_empty_database(run, pg_url, tmp_path):
    fill(run, pg_url, tmp_path)
    dumped = run("--database-url", pg_url, "db", "dump", "--file", str(tmp_path / "d.jsonl"))
    assert dumped.exit_code == 0 and (tmp_path / "d.jsonl").read_text().startswith('{"format":"itemctl-dump"')
    again = run("--database-url", pg_url, "db", "restore", str(tmp_path / "d.jsonl"))
    assert again.exit_code == 4 and "not empty" in again.stderr
    from_stdin = run("--database-url", pg_url, "db", "restore", "-", input=(tmp_path / "d.jsonl").read_text())
    assert from_stdin.exit_code == 4


def test_dump_and_restore_show_progress_on_a_terminal(run, pg_url, sqlite_url, tmp_path):
    from tests.cli.test_terminal import on_a_terminal

    rows = tmp_path / "rows.csv"
    rows.write_text("title\n" + "".join(f"row {i}\n" for i in range(2500)))
    assert run("--database-url", pg_url, "--as", "alice", "items", "import", str(rows)).exit_code == 0
    dump_file = tmp_path / "big.jsonl"
    code, screen = on_a_terminal("--database-url", pg_url, "db", "dump", "--file", str(dump_file))
    assert code == 0 and "dumping" in screen and "dumped 1 user(s), 0 tag(s), 2500 item(s)" in screen, screen
    code, screen = on_a_terminal("--database-url", sqlite_url("target.db"), "db", "restore", str(dump_file))
    assert code == 0 and "restoring" in screen and "━" in screen, screen


def test_a_dump_that_is_not_utf8_or_repeats_a_name_restores_nothing(run, pg_url, sqlite_url, tmp_path):
    header = json.dumps({"format": "itemctl-dump", "version": 1, "revision": "0005"})
    user = {"type": "user", "username": "ann", "email": None, "is_admin": False, "created_at": "2026-11-30T12:00:00.000000Z"}
    cases = {
        "latin.jsonl": (header + "\n" + '{"type": "tag", "id": "00000000-0000-4000-8000-000000000001", "name": "Caf\xe9"}\n').encode("latin-1"),
        "twice.jsonl": "\n".join([
            header,
            json.dumps({**user, "id": "00000000-0000-4000-8000-000000000001"}),
            json.dumps({"type": "tag", "id": "00000000-0000-4000-8000-000000000002", "name": "ops"}),
            json.dumps({"type": "tag", "id": "00000000-0000-4000-8000-000000000003", "name": "OPS"}),
        ]).encode() + b"\n",
    }
    for url in (pg_url, sqlite_url("target.db")):
        for name, data in cases.items():
            (tmp_path / name).write_bytes(data)
            result = run("--database-url", url, "db", "restore", str(tmp_path / name))
            assert result.exit_code == 6, (url, name, result)
            assert ("line 2" in result.stderr) if name == "latin.jsonl" else (
                "line 4 of the dump: tag name 'OPS' appears twice (first at line 3)" in result.stderr
            ), result
        assert run("--database-url", url, "db", "dump").stdout.count("\n") == 2


def test_a_dump_cut_short_or_miscounted_restores_nothing(run, pg_url, sqlite_url, tmp_path):
    source = sqlite_url("source.db")
    fill(run, source, tmp_path)
    lines = run("--database-url", source, "db", "dump").stdout.splitlines()
    trailer = json.loads(lines[-1])
    cases = {
        # A copy interrupted at a line boundary: `head -n 8 full.jsonl > cut.jsonl`.
        "cut.jsonl": (lines[:8], "the dump ends early at line 9"),
        "miscounted.jsonl": (lines[:-1] + [json.dumps({**trailer, "items": 11})], "holds 10 items, its trailer says 11"),
        "no-links.jsonl": (lines[:-1] + [json.dumps({**trailer, "links": 0})], "holds 11 links, its trailer says 0"),
    }
    for url in (pg_url, sqlite_url("target.db")):
        for name, (content, named) in cases.items():
            (tmp_path / name).write_text("\n".join(content) + "\n")
            result = run("--database-url", url, "db", "restore", str(tmp_path / name))
            assert result.exit_code == 6 and named in result.stderr, (url, name, result)
            assert "nothing was restored" in result.stderr
        assert run("--database-url", url, "--as", "root", "users", "list", "-o", "id").stdout == ""


def test_a_version_1_dump_restores_with_a_warning(run, pg_url, sqlite_url, tmp_path):
    source = sqlite_url("source.db")
    fill(run, source, tmp_path)
    lines = run("--database-url", source, "db", "dump").stdout.splitlines()
    old = [json.dumps({**json.loads(lines[0]), "version": 1}, separators=(",", ":"))] + lines[1:-1]
    (tmp_path / "v1.jsonl").write_text("\n".join(old) + "\n")
    result = run("--database-url", pg_url, "db", "restore", str(tmp_path / "v1.jsonl"))
    assert result.exit_code == 0, result
    assert "completeness" in result.stderr or "whether it is complete cannot be checked" in result.stderr
    assert run("--database-url", pg_url, "db", "dump").stdout.splitlines()[1:] == lines[1:]


def test_a_compressed_dump_and_a_byte_order_mark(run, pg_url, sqlite_url, tmp_path):
    import gzip

    fill(run, pg_url, tmp_path)
    packed = tmp_path / "backup.jsonl.gz"
    assert run("--database-url", pg_url, "db", "dump", "--file", str(packed)).exit_code == 0
    plain = run("--database-url", pg_url, "db", "dump").stdout
    assert gzip.decompress(packed.read_bytes()).decode() == plain
    again = tmp_path / "again.jsonl.gz"
    run("--database-url", pg_url, "db", "dump", "--file", str(again))
    assert again.read_bytes() == packed.read_bytes()  # nothing volatile, not even in gzip's header
    target = sqlite_url("target.db")
    restored = run("--database-url", target, "db", "restore", str(packed))
    assert restored.exit_code == 0, restored
    assert run("--database-url", target, "db", "dump").stdout == plain
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + plain.encode())
    assert run("--database-url", sqlite_url("bom.db"), "db", "restore", str(tmp_path / "bom.jsonl")).exit_code == 0


def test_a_dump_never_lands_on_its_own_database(run, tmp_path):
    database = tmp_path / "items.db"
    url = f"sqlite:///{database}"
    assert run("--database-url", url, "db", "migrate").exit_code == 0
    assert run("--database-url", url, "--as", "root", "items", "create", "kept").exit_code == 0
    before = database.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(database)
    for target in (database, link, f"{database}-wal", f"{database}-journal"):
        result = run("--database-url", url, "db", "dump", "--file", str(target))
        assert result.exit_code == 2 and "the database file" in result.stderr, (target, result)
        exported = run("--database-url", url, "--as", "root", "items", "export", "--file", str(target))
        assert exported.exit_code == 2 and "the database file" in exported.stderr, (target, exported)
    assert database.read_bytes() == before and link.is_symlink()
    assert run("--database-url", url, "--as", "root", "items", "list", "-o", "id").stdout.count("\n") == 1


def test_a_repeated_item_or_user_is_named_by_its_line_on_both_backends(run, pg_url, sqlite_url, tmp_path):
    source = sqlite_url("source.db")
    fill(run, source, tmp_path)
    lines = run("--database-url", source, "db", "dump").stdout.splitlines()
    items = [n for n, line in enumerate(lines) if '"type":"item"' in line]
    first, second = json.loads(lines[items[0]]), json.loads(lines[items[1]])
    trailer = json.loads(lines[-1])
    same_id = lines[:-1] + [json.dumps({**second, "id": first["id"]})] + [json.dumps({**trailer, "items": trailer["items"] + 1, "links": trailer["links"] + len(second["tags"])})]
    same_name = lines[:-1] + [json.dumps({**first, "id": "ffffffff-ffff-4fff-8fff-ffffffffffff"})] + [json.dumps({**trailer, "items": trailer["items"] + 1, "links": trailer["links"] + len(first["tags"])})]
    users = [n for n, line in enumerate(lines) if '"type":"user"' in line]
    same_user_id = lines[: users[-1] + 1] + [json.dumps({**json.loads(lines[users[0]]), "username": "another"})] + lines[users[-1] + 1 :]
    cases = {
        "same-id.jsonl": (same_id, f"line {len(lines)} of the dump: item id {first['id']} appears twice (first at line {items[0] + 1})"),
        "same-name.jsonl": (same_name, f"appears twice (first at line {items[0] + 1})"),
        "same-user-id.jsonl": (same_user_id, f"user id {json.loads(lines[users[0]])['id']} appears twice (first at line {users[0] + 1})"),
    }
    for url in (pg_url, sqlite_url("target.db")):
        for name, (content, named) in cases.items():
            (tmp_path / name).write_text("\n".join(content) + "\n")
            result = run("--database-url", url, "db", "restore", str(tmp_path / name))
            assert result.exit_code == 6 and named in result.stderr, (url, name, result)
        from tests.conftest import process_env, run_process

        # A real pipe cannot be read twice: the reason, without the line.
        piped = run_process("--database-url", url, "db", "restore", "-", input="\n".join(same_id) + "\n", env=process_env())
        assert piped.exit_code == 6 and "two items with the same id" in piped.stderr, piped
        assert run("--database-url", url, "--as", "root", "users", "list", "-o", "id").stdout == ""


def test_a_dump_cut_inside_a_line_or_with_a_malformed_trailer(run, pg_url, sqlite_url, tmp_path):
    fill(run, pg_url, tmp_path)
    whole = run("--database-url", pg_url, "db", "dump").stdout
    (tmp_path / "cut.jsonl").write_text(whole[: len(whole) // 2])
    result = run("--database-url", sqlite_url("a.db"), "db", "restore", str(tmp_path / "cut.jsonl"))
    assert result.exit_code == 6 and "ends early at line" in result.stderr and "in the middle of a record" in result.stderr, result
    lines = whole.splitlines()
    (tmp_path / "odd.jsonl").write_text("\n".join(lines[:-1] + [json.dumps({**json.loads(lines[-1]), "extra": 1})]) + "\n")
    result = run("--database-url", sqlite_url("b.db"), "db", "restore", str(tmp_path / "odd.jsonl"))
    assert result.exit_code == 6 and "the trailer must hold exactly" in result.stderr, result


@pytest.mark.parametrize(
    ("table", "constraint", "sqlite_message", "named"),
    [
        ("tag", "uq_tag_lower_name", "UNIQUE constraint failed: index 'uq_tag_lower_name'", "two tags"),
        ("user", "uq_user_username", "UNIQUE constraint failed: user.username", "two users"),
        ("item_tag", "pk_item_tag", "UNIQUE constraint failed: item_tag.item_id, item_tag.tag_id", "same tag twice"),
    ],
)
def test_a_unique_index_refusing_tags_or_users_names_them_not_items(table, constraint, sqlite_message, named):
    """What the target's own folding merges, and the dump's checks could not see (another
    PostgreSQL locale's lower(), say): the message names the table that refused, from
    PostgreSQL's diagnostics or SQLite's message, never "items", never the values."""
    import io
    import sqlite3
    from types import SimpleNamespace

    from itemctl.services.dump import _repeated

    postgres = SimpleNamespace(diag=SimpleNamespace(table_name=table, constraint_name=constraint))
    for error in (postgres, sqlite3.IntegrityError(sqlite_message)):
        message = _repeated(io.BytesIO(b""), error)
        assert named in message and "items" not in message, message
