"""``itemctl items import`` and ``items export`` on PostgreSQL, as scripts use them."""

from __future__ import annotations

import csv
import io
import json
import os
import sys

import psycopg
import pytest

from tests.conftest import process_env, run_process


def query(url: str, sql: str):
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return conn.execute(sql).fetchall()


def write_csv(path, rows, header=("title", "description", "owner", "tags")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(h, "") for h in header])
    return str(path)


def generated(n: int) -> list[dict]:
    return [{"title": f"item {i}", "description": f"d{i}", "tags": ";".join(f"t{(i + k) % 7}" for k in range(i % 3))} for i in range(n)]


def signature(url: str):
    return query(
        url,
        """SELECT u.username, i.title, i.description,
                  (SELECT string_agg(t.name, ';' ORDER BY t.name) FROM item_tag it JOIN tag t ON t.id = it.tag_id
                   WHERE it.item_id = i.id)
           FROM item i JOIN "user" u ON u.id = i.owner_id ORDER BY 1, 2""",
    )


@pytest.fixture
def alice(itemctl):
    return lambda *a, **kw: itemctl("--as", "alice", *a, **kw)


def test_a_5000_row_file_and_its_modes(alice, pg_url, tmp_path):
    rows = generated(5000)
    path = write_csv(tmp_path / "items.csv", rows)
    first = alice("items", "import", path, "-o", "json")
    assert first.exit_code == 0, first
    assert first.json() == {"read": 5000, "inserted": 5000, "updated": 0, "skipped": 0, "rejected": 0}
    assert query(pg_url, "SELECT count(*) FROM item") == [(5000,)]
    assert query(pg_url, "SELECT count(*) FROM item_tag") == [(sum(i % 3 for i in range(5000)),)]
    before = signature(pg_url)

    again = alice("items", "import", path)
    assert again.exit_code == 4 and again.stderr.startswith("error: 5000 row(s) conflict")
    assert signature(pg_url) == before

    skipped = alice("items", "import", path, "--mode", "skip", "-o", "json")
    assert skipped.json() == {"read": 5000, "inserted": 0, "updated": 0, "skipped": 5000, "rejected": 0}

    for i in (10, 20, 30):
        rows[i]["description"] = "edited"
    edited = write_csv(tmp_path / "edited.csv", rows)
    upserted = alice("items", "import", edited, "--mode", "upsert", "-o", "json")
    assert upserted.json() == {"read": 5000, "inserted": 0, "updated": 3, "skipped": 4997, "rejected": 0}
    assert query(pg_url, "SELECT title FROM item WHERE description = 'edited' ORDER BY title") == [
        ("item 10",), ("item 20",), ("item 30",)
    ]


def test_a_bad_row_fails_the_import_or_is_set_aside(alice, pg_url, tmp_path):
    rows = generated(5000)
    rows[2499]["title"] = "x" * 256  # data line 2,500 is line 2,501 of the file
    path = write_csv(tmp_path / "items.csv", rows)
    failed = alice("items", "import", path)
    assert failed.exit_code == 6
    assert "line 2501 (row 2500): title" in failed.stderr and len(failed.stderr.splitlines()) == 1
    assert query(pg_url, "SELECT count(*) FROM item") == [(0,)]

    rejects = tmp_path / "r.jsonl"
    done = alice("items", "import", path, "--rejects", str(rejects), "-o", "json")
    assert done.exit_code == 0, done
    assert done.json()["inserted"] == 4999 and done.json()["rejected"] == 1
    [rejected] = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (rejected["line"], rejected["row"], rejected["record"]["title"]) == (2501, 2500, "x" * 256)
    assert rejected["reason"].startswith("title:")


def test_export_then_import_into_an_empty_database_is_exact(itemctl, pg_url, make_database, run, tmp_path):
    rows = [
        {"title": 'commas, "quotes"', "description": "line one\nline two", "tags": "Ops;b"},
        {"title": "Zürich 東京 🙂", "description": "tab\there", "tags": ""},
        {"title": "\ufeffbom-looking", "description": "", "tags": "x"},
    ]
    assert itemctl("--as", "alice", "items", "import", write_csv(tmp_path / "in.csv", rows)).exit_code == 0
    original = signature(pg_url)
    for fmt in ("csv", "jsonl"):
        exported = tmp_path / f"out.{fmt}"
        result = itemctl("items", "export", "--format", fmt, "--file", str(exported))
        assert result.exit_code == 0 and "exported 3 item(s)" in result.stderr
        empty = make_database()
        imported = run("--database-url", empty, "--as", "alice", "items", "import", str(exported))
        assert imported.exit_code == 0, imported
        assert signature(empty) == original, fmt


def test_stdin_formats_and_dry_run(alice, pg_url):
    lines = '{"title": "a", "tags": ["x"]}\n{"title": "b"}\n'
    dry = alice("items", "import", "-", "--format", "jsonl", "--dry-run", "-o", "json", input=lines)
    assert dry.exit_code == 0 and dry.json()["inserted"] == 2
    assert query(pg_url, "SELECT count(*) FROM item") == [(0,)] and query(pg_url, 'SELECT count(*) FROM "user"') == [(0,)]
    real = alice("items", "import", "-", "--format", "jsonl", input=lines)
    assert real.exit_code == 0 and "inserted 2" in real.stderr and real.stdout == ""
    array = alice("items", "import", "-", "--format", "json", input=json.dumps([{"title": "c"}]))
    assert array.exit_code == 0
    assert alice("items", "import", "-", input="title\nd\n").exit_code == 0  # stdin defaults to CSV
    assert query(pg_url, "SELECT count(*) FROM item") == [(4,)]


def test_file_level_errors(alice, tmp_path):
    assert alice("items", "import", str(tmp_path / "missing.csv")).exit_code == 6  # a bad input, not a missing item
    odd = tmp_path / "items.txt"
    odd.write_text("title\nx\n")
    unknown = alice("items", "import", str(odd))
    assert unknown.exit_code == 6 and "--format" in unknown.stderr
    assert alice("items", "import", str(odd), "--format", "csv").exit_code == 0
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("title,colour\nx,red\n")
    result = alice("items", "import", str(bad_header))
    assert result.exit_code == 6 and "colour" in result.stderr
    latin = tmp_path / "latin.csv"
    latin.write_bytes("title\ncaf\xe9\n".encode("latin-1"))
    assert alice("items", "import", str(latin)).exit_code == 6


def test_importing_for_another_owner_needs_admin(itemctl, tmp_path):
    path = write_csv(tmp_path / "x.csv", [{"title": "x", "owner": "bob"}])
    itemctl("--as", "bob", "items", "create", "bob's own")  # bob exists from his first change
    denied = itemctl("--as", "alice", "items", "import", path)
    assert denied.exit_code == 5 and "admin" in denied.stderr
    itemctl("--as", "root", "users", "create", "root", "--admin")
    assert itemctl("--as", "root", "items", "import", path).exit_code == 0


def constraints_and_indexes(url: str):
    return query(
        url,
        """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid IN ('item'::regclass, 'item_tag'::regclass, 'tag'::regclass, '"user"'::regclass)
           UNION ALL SELECT tablename, indexname, indexdef || CASE WHEN x.indisvalid THEN '' ELSE ' (INVALID)' END
           FROM pg_indexes JOIN pg_index x ON x.indexrelid = (quote_ident(schemaname) || '.' || quote_ident(indexname))::regclass
           WHERE schemaname = 'public'
           ORDER BY 1, 2, 3""",
    )


def test_exclusive_gives_the_same_rows_and_restores_everything(itemctl, pg_url, tmp_path, make_database, run):
    rows = generated(300)
    path = write_csv(tmp_path / "items.csv", rows)
    structure = constraints_and_indexes(pg_url)
    exclusive = itemctl("--as", "alice", "items", "import", path, "--exclusive")
    assert exclusive.exit_code == 0, exclusive
    assert "locking tables item and item_tag" in exclusive.stderr
    assert constraints_and_indexes(pg_url) == structure
    other = make_database()
    assert run("--database-url", other, "--as", "alice", "items", "import", path).exit_code == 0
    assert signature(pg_url) == signature(other)
    assert itemctl("db", "check").exit_code == 0


def test_exclusive_with_an_unknown_owner_changes_nothing(itemctl, pg_url, tmp_path):
    itemctl("--as", "root", "users", "create", "root", "--admin")
    itemctl("--as", "root", "items", "create", "existing", "--tag", "t")
    before = (signature(pg_url), constraints_and_indexes(pg_url))
    path = write_csv(tmp_path / "x.csv", [{"title": "a"}, {"title": "b", "owner": "ghost"}])
    result = itemctl("--as", "root", "items", "import", path, "--exclusive")
    assert result.exit_code == 6 and "ghost" in result.stderr
    assert (signature(pg_url), constraints_and_indexes(pg_url)) == before


def phases(stderr: str) -> list[str]:
    """The phase names an import printed with -v: the direct load's or the staged path's."""
    line = next(line for line in stderr.splitlines() if line.startswith("import timings: "))
    return [part.rsplit(" ", 2)[0] for part in line.removeprefix("import timings: ").split(", ")]


def test_a_clean_file_and_a_clean_pipe_both_load_directly(itemctl, pg_url, tmp_path, make_database):
    rows = generated(2500)  # more than one batch: the COPY pauses for new tags
    path = write_csv(tmp_path / "items.csv", rows)
    direct = itemctl("-v", "--as", "alice", "items", "import", path)
    assert direct.exit_code == 0, direct
    assert phases(direct.stderr) == ["client", "items", "links"]
    other = make_database()
    with open(path, encoding="utf-8") as f:
        piped = run_process("--database-url", other, "-v", "--as", "alice", "items", "import", "-", input=f.read())
    assert piped.exit_code == 0, piped
    assert phases(piped.stderr) == ["client", "items", "links"]
    assert signature(pg_url) == signature(other)


def test_a_pipe_with_a_late_problem_is_read_again_from_its_spool_and_leaves_none(pg_url, tmp_path):
    """The direct load met the problem after writing batches: the staged path replays what
    the pipe gave, reads the rest, and names the rows; the spool never outlives the command."""
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    env = process_env(TMPDIR=str(spool_dir))
    rows = [{**row, "owner": "alice"} for row in generated(5000)] + [{"title": "item 10", "owner": "alice"}]
    with open(write_csv(tmp_path / "r.csv", rows), encoding="utf-8") as f:
        text = f.read()
    repeat = run_process("--database-url", pg_url, "-v", "--as", "alice", "items", "import", "-", input=text, env=env)
    assert repeat.exit_code == 6, repeat
    assert "line 5002 (row 5001): title: 'item 10' for owner 'alice' is also on line 12 (row 11)" in repeat.stderr
    clean = run_process("--database-url", pg_url, "--as", "alice", "items", "import", "-", "--rejects", str(tmp_path / "rej.jsonl"), input=text, env=env)
    assert clean.exit_code == 0 and "inserted 5000" in clean.stderr and "rejected 1" in clean.stderr, clean
    assert query(pg_url, "SELECT count(*) FROM item")[0][0] == 5000
    assert os.listdir(spool_dir) == []


def test_a_spool_that_cannot_be_written_is_exit_6_and_imports_nothing(pg_url, tmp_path):
    import resource
    import signal
    import subprocess

    text = "title\n" + "".join(f"row {i} {'x' * 100}\n" for i in range(20_000))  # about 2 MB
    completed = subprocess.run(
        [sys.executable, "-m", "itemctl", "--database-url", pg_url, "--as", "alice", "items", "import", "-"],
        input=text, capture_output=True, text=True, env=process_env(TMPDIR=str(tmp_path)), timeout=60,
        preexec_fn=lambda: (signal.signal(signal.SIGXFSZ, signal.SIG_IGN), resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, 500_000))),
    )
    assert completed.returncode == 6 and "cannot keep a copy of the piped input" in completed.stderr, completed.stderr
    assert query(pg_url, "SELECT count(*) FROM item")[0][0] == 0


@pytest.mark.parametrize("exclusive", [False, True], ids=["plain", "exclusive"])
def test_a_late_problem_in_a_large_file_is_reported_exactly_and_changes_nothing(itemctl, pg_url, tmp_path, exclusive):
    """The direct load has written earlier batches when it meets the problem: it rolls back
    to its savepoint and the staged path names the rows, as for a small file."""
    flags = ["--exclusive"] if exclusive else []
    itemctl("--as", "root", "users", "create", "root", "--admin")
    itemctl("--as", "root", "items", "create", "item 4000", "--owner", "root")
    before = (signature(pg_url), constraints_and_indexes(pg_url))

    rows = [{**row, "owner": "root"} for row in generated(5000)]
    conflict = itemctl("--as", "root", "items", "import", write_csv(tmp_path / "c.csv", rows), *flags)
    assert conflict.exit_code == 4, conflict
    error = conflict.stderr.splitlines()[-1]
    assert error.startswith("error: 1 row(s) conflict with existing items") and "line 4002 (row 4001)" in error

    repeated = rows + [{"title": "item 10", "owner": "root"}]
    repeat = itemctl("--as", "root", "items", "import", write_csv(tmp_path / "r.csv", repeated), *flags)
    assert repeat.exit_code == 6, repeat
    assert "line 5002 (row 5001): title: 'item 10' for owner 'root' is also on line 12 (row 11)" in repeat.stderr

    unknown = rows[:4000] + [{"title": "late", "owner": "ghost"}]
    ghost = itemctl("--as", "root", "items", "import", write_csv(tmp_path / "u.csv", unknown), *flags)
    assert ghost.exit_code == 6 and "line 4002 (row 4001): owner: unknown user 'ghost'" in ghost.stderr, ghost

    invalid = rows[:3000] + [{"title": "x" * 256}]
    too_long = itemctl("--as", "root", "items", "import", write_csv(tmp_path / "i.csv", invalid), *flags)
    assert too_long.exit_code == 6 and "line 3002 (row 3001): title" in too_long.stderr, too_long
    if exclusive:
        assert too_long.stderr.count("re-created after it") == 1  # said once, not per attempt
    assert (signature(pg_url), constraints_and_indexes(pg_url)) == before


def test_a_gzip_file_with_a_late_problem_is_read_again_and_reported(any_itemctl, tmp_path):
    import gzip

    lines = ["title,tags"] + [f"row {i},t{i % 5}" for i in range(3000)] + ["row 7,again"]
    packed = tmp_path / "rows.csv.gz"
    packed.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    result = any_itemctl("--as", "alice", "items", "import", str(packed))
    assert result.exit_code == 6, result
    assert "line 3002 (row 3001): title: 'row 7' for owner 'alice' is also on line 9 (row 8)" in result.stderr
    assert any_itemctl("--as", "alice", "items", "count").stdout == "0\n"
    assert any_itemctl("--as", "alice", "tags", "list", "-o", "json").json() == []


def test_new_tags_keep_their_first_spelling_across_batches(any_itemctl, tmp_path):
    any_itemctl("--as", "alice", "items", "create", "seed", "--tag", "Existing")
    rows = [{"title": f"r{i}"} for i in range(3000)]
    rows[1500]["tags"] = "Ops;EXISTING"
    rows[2600]["tags"] = "ops;existing"
    result = any_itemctl("--as", "alice", "items", "import", write_csv(tmp_path / "t.csv", rows))
    assert result.exit_code == 0, result
    tags = any_itemctl("--as", "alice", "tags", "list", "-o", "json").json()
    assert sorted((tag["name"], tag["item_count"]) for tag in tags) == [("Existing", 3), ("Ops", 2)]


def test_export_filters_and_stdout(alice, tmp_path):
    alice("items", "create", "one", "--tag", "x")
    alice("items", "create", "two")
    out = alice("items", "export", "--tag", "x")
    assert out.exit_code == 0
    parsed = list(csv.DictReader(io.StringIO(out.stdout)))
    assert parsed == [{"title": "one", "description": "", "owner": "alice", "tags": "x"}]
    jsonl = alice("items", "export", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["title"] for line in jsonl] == ["one", "two"]


def test_a_real_process_reads_stdin_and_shows_no_progress_when_piped(pg_url):
    result = run_process(
        "--database-url", pg_url, "--as", "alice", "items", "import", "-", "--format", "jsonl",
        input='{"title": "piped"}\n',
    )
    assert result.exit_code == 0, result
    assert result.stderr.startswith("imported: read 1, inserted 1")
    assert "\x1b[" not in result.stderr


def test_an_unreadable_input_is_invalid(alice, tmp_path):
    folder = tmp_path / "not-a-file.csv"
    folder.mkdir()
    result = alice("items", "import", str(folder))
    assert result.exit_code == 6 and "cannot read" in result.stderr


def test_export_file_takes_its_format_from_the_extension_unless_format_says(any_itemctl, tmp_path):
    any_itemctl("--as", "alice", "items", "create", "one", "--tag", "x")
    for name, first in (("out.jsonl", "{"), ("out.ndjson", "{"), ("out.csv", "title,"), ("out.txt", "title,")):
        result = any_itemctl("--as", "alice", "items", "export", "--file", str(tmp_path / name))
        assert result.exit_code == 0, result
        assert (tmp_path / name).read_text().startswith(first), name
    flag_wins = any_itemctl("--as", "alice", "items", "export", "--file", str(tmp_path / "x.csv"), "--format", "jsonl")
    assert flag_wins.exit_code == 0 and (tmp_path / "x.csv").read_text().startswith("{")
    reimported = any_itemctl("--as", "alice", "items", "import", str(tmp_path / "out.jsonl"), "--mode", "skip", "-o", "json")
    assert reimported.json()["skipped"] == 1


def test_real_world_csv_headers_and_itemctl_own_output_import(any_itemctl, tmp_path):
    spreadsheet = tmp_path / "sheet.csv"
    spreadsheet.write_text("Title , DESCRIPTION,Tags,\nOne,first,a;b,\nTwo,,c,\n")
    result = any_itemctl("--as", "alice", "items", "import", str(spreadsheet), "-o", "json")
    assert result.exit_code == 0 and result.json()["inserted"] == 2, result
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("title,Tags,tags\nx,a,b\n")
    twice = any_itemctl("--as", "alice", "items", "import", str(repeated))
    assert twice.exit_code == 6 and "'tags' appears twice" in twice.stderr, twice
    listed = any_itemctl("--as", "alice", "items", "list", "-o", "ndjson").stdout
    assert '"id"' in listed and '"created_at"' in listed
    again = any_itemctl("--as", "alice", "items", "import", "-", "--format", "jsonl", "--mode", "skip", "-o", "json", input=listed)
    assert again.exit_code == 0 and again.json()["skipped"] == 2, again
    dry = any_itemctl("--as", "alice", "items", "import", str(spreadsheet), "--mode", "skip", "--dry-run", "-o", "json")
    assert dry.json()["dry_run"] is True


def test_european_spreadsheets_other_encodings_and_gzip(any_itemctl, tmp_path):
    import gzip

    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"title;tags\n" + b"".join(f"row {i};x\n".encode() for i in range(3)) + b"Caf\xe9;a\n")
    wrong = any_itemctl("--as", "alice", "items", "import", str(latin))
    assert wrong.exit_code == 6 and "--delimiter ';'" in wrong.stderr, wrong
    undecodable = any_itemctl("--as", "alice", "items", "import", str(latin), "--delimiter", ";")
    offset = latin.read_bytes().index(b"\xe9") + 1
    assert undecodable.exit_code == 6, undecodable
    assert f"line 5: byte {offset} of the file" in undecodable.stderr and "--encoding" in undecodable.stderr
    read = any_itemctl("--as", "alice", "items", "import", str(latin), "--delimiter", ";", "--encoding", "cp1252", "-o", "json")
    assert read.exit_code == 0 and read.json()["inserted"] == 4, read
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("title\ttags\nÜber\tb\n".encode("utf-16"))
    tabbed = any_itemctl("--as", "alice", "items", "import", str(utf16), "--encoding", "utf-16", "--delimiter", "\t", "-o", "json")
    assert tabbed.exit_code == 0 and tabbed.json()["inserted"] == 1, tabbed
    packed = tmp_path / "rows.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"title": "zipped"}\n'))
    zipped = any_itemctl("--as", "alice", "items", "import", str(packed), "-o", "json")
    assert zipped.exit_code == 0 and zipped.json()["inserted"] == 1, zipped
    assert any_itemctl("--as", "alice", "items", "count", "--search", "Café").stdout == "1\n"


@pytest.mark.parametrize("mode", ["skip", "upsert"])
def test_overlapping_skip_and_upsert_runs_all_succeed_and_items_exist_once(pg_url, tmp_path, mode):
    """Three runs of one file, lined up so that their inserts overlap: a session holds a
    SHARE lock on item until all three wait to write, then lets them go at once."""
    import subprocess
    import sys
    import time

    from tests.conftest import process_env

    rows = tmp_path / "rows.csv"
    rows.write_text("title,tags\n" + "".join(f"row {i},t{i % 7}\n" for i in range(2000)))
    command = [sys.executable, "-m", "itemctl", "--database-url", pg_url, "--as", "loader", "items", "import", str(rows), "--mode", mode]
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("INSERT INTO \"user\" (id, username, is_admin) VALUES (gen_random_uuid(), 'loader', false)")
    with psycopg.connect(pg_url.replace("+psycopg", "")) as gate:
        gate.execute("LOCK TABLE item IN SHARE MODE")  # inserts wait; reads do not
        runs = [subprocess.Popen(command, env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        deadline = time.monotonic() + 60
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as watcher:  # fresh statistics each time
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'itemctl' AND wait_event_type = 'Lock'"
                ).fetchone()[0]
                if waiting == 3:
                    break
                time.sleep(0.1)
        gate.rollback()  # all three write at once
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert [code for code, _ in results] == [0, 0, 0], results
    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT title) FROM item").fetchone() == (2000, 2000)
        assert conn.execute("SELECT count(*) FROM item_tag").fetchone() == (2000,)


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--delimiter", ";;"], 6, "one character"),
        (["--encoding", "klingon"], 6, "unknown encoding"),
    ],
)
def test_a_reading_option_that_cannot_be_used_is_exit_6(any_itemctl, tmp_path, args, code, said):
    path = tmp_path / "rows.csv"
    path.write_text("title\none\n")
    result = any_itemctl("--as", "alice", "items", "import", str(path), *args)
    assert result.exit_code == code and said in result.stderr, result


def test_a_csv_field_too_long_for_any_item_is_one_rejected_row_and_old_mac_lines_are_named(any_itemctl, tmp_path):
    huge = tmp_path / "huge.csv"
    huge.write_text("title,description\nok1,a\nhuge,\"" + "x" * 200_000 + "\"\nok2,b\n")
    result = any_itemctl("items", "import", str(huge), "--rejects", str(tmp_path / "rejects.jsonl"))
    assert result.exit_code == 0, result.stderr
    rejected = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejected] == [(3, "description")]
    assert any_itemctl("items", "count").stdout == "2\n"
    classic_mac = tmp_path / "mac.csv"
    classic_mac.write_bytes(b"title,description\rA,x\r")
    failed = any_itemctl("items", "import", str(classic_mac))
    assert failed.exit_code == 6 and "universal-newline" not in failed.stderr, failed.stderr
    assert "carriage return" in failed.stderr, failed.stderr


def test_a_csv_field_past_the_reading_limit_is_a_malformed_file_named_by_line(any_itemctl, tmp_path):
    from itemctl.services.bulk.readers import CSV_FIELD_LIMIT

    past = tmp_path / "past.csv"
    past.write_text('title,description\nok,a\nhuge,"' + "x" * (CSV_FIELD_LIMIT + 1) + '"\n')
    result = any_itemctl("items", "import", str(past), "--rejects", str(tmp_path / "rejects.jsonl"))
    assert result.exit_code == 6, result.stderr
    assert result.stderr.startswith(f"error: line 3: malformed CSV: a field is longer than {CSV_FIELD_LIMIT:,} characters"), result.stderr
    assert any_itemctl("items", "count").stdout == "0\n"
    assert not (tmp_path / "rejects.jsonl").exists()
