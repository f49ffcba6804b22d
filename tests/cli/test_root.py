"""The root command: help, version, usage errors and the error boundary."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import process_env, run_process


def test_help_lists_every_group(run):
    result = run("--help")
    assert result.exit_code == 0
    for group in ("items", "users", "tags", "db", "audit"):
        assert f"  {group} " in result.stdout


def test_version_names_the_schema_head_it_ships(run):
    from itemctl import __version__
    from itemctl.services.schema import head_revision

    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"itemctl {__version__} (schema head {head_revision()})"
    as_json = run("--version", "-o", "json")
    assert as_json.json() == {"version": __version__, "schema_head": head_revision()}


def test_the_root_help_loads_no_command_group():
    """``itemctl --help`` shows every group by its help without building any of them; a
    command loads its own group only."""
    import subprocess

    code = (
        "import sys\n"
        "from itemctl.cli import main\n"
        "main(['--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('itemctl.cli.') and m.count('.') == 2), file=sys.stderr)\n"
        "main(['tags', '--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('itemctl.cli.') and m.count('.') == 2), file=sys.stderr)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    first, second = (eval(line) for line in completed.stderr.strip().splitlines()[-2:])
    groups = {"itemctl.cli.items", "itemctl.cli.users", "itemctl.cli.tags", "itemctl.cli.db", "itemctl.cli.audit", "itemctl.cli.bulk"}
    assert groups & set(first) == set()
    assert groups & set(second) == {"itemctl.cli.tags"}
    for name in ("items", "users", "tags", "db", "audit", "status"):
        assert f"\n  {name} " in completed.stdout


def test_unknown_command_is_a_usage_error_in_one_line(run):
    result = run("frobnicate")
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_unknown_option_is_a_usage_error(run):
    result = run("db", "current", "--frob")
    assert result.exit_code == 2 and "--frob" in result.stderr


def test_help_and_version_do_not_import_the_database_stack():
    code = (
        "import sys\n"
        "from itemctl.cli import main\n"
        "for argv in (['--version'], ['--help'], ['items', '--help'], ['items', 'list', '--help'], ['db', 'migrate', '--help']):\n"
        "    main(argv)\n"
        "heavy = {'sqlalchemy', 'sqlmodel', 'alembic', 'psycopg'} & set(sys.modules)\n"
        "print(sorted(heavy), file=sys.stderr)\n"
    )
    import subprocess

    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.strip() == "[]"


def test_a_real_process_exits_with_the_contract_code(tmp_path):
    result = run_process("--env", "production", "users", "whoami", cwd=tmp_path)
    assert result.exit_code == 7 and result.stderr.startswith("error: no database configured")


def every_command():
    from itemctl.cli import command_tree

    root = command_tree()
    for group_name, group in root.commands.items():
        if not hasattr(group, "commands"):  # a command of its own: itemctl status
            yield group_name, group
        for name, command in getattr(group, "commands", {}).items():
            yield f"{group_name} {name}", command


def test_every_command_has_a_summary_and_an_example():
    for name, command in every_command():
        help_text = command.help or ""
        assert help_text.strip().splitlines()[0], name
        assert "Example: itemctl" in help_text, name


def test_every_command_is_in_the_readme():
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    missing = [name for name, _ in every_command() if f"itemctl {name}" not in readme]
    assert missing == []


def test_the_command_reference_is_up_to_date():
    from itemctl.cli.reference import render_reference
    from tests.conftest import ROOT

    expected = render_reference()
    actual = (ROOT / "docs" / "cli.md").read_text()
    assert actual == expected, "docs/cli.md is stale: uv run python -m itemctl.cli.reference > docs/cli.md"


def test_a_command_checks_the_schema_without_loading_alembic(pg_url):
    import subprocess

    code = (
        "import sys\n"
        "from itemctl.cli import main\n"
        f"code = main(['--database-url', {pg_url!r}, '--as', 'x', 'items', 'count'])\n"
        "print(code, 'alembic' in sys.modules, file=sys.stderr)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.stderr.strip().splitlines()[-1] == "0 False", completed.stderr


class _Deadlock(Exception):
    sqlstate = "40P01"


def test_a_deadlocked_command_is_run_again_and_a_duplicate_never(itemctl, monkeypatch):
    from sqlalchemy import exc

    from itemctl.services import reads

    real = reads.count_items
    calls = []

    def flaky(**kw):
        calls.append(1)
        if len(calls) == 1:
            raise exc.OperationalError("SELECT count(*) FROM item", {}, _Deadlock("deadlock detected"))
        return real(**kw)

    monkeypatch.setattr(reads, "count_items", flaky)
    result = itemctl("--as", "alice", "items", "count")
    assert result.exit_code == 0 and result.stdout == "0\n" and len(calls) == 2
    assert "trying again (1/2)" in result.stderr

    calls.clear()
    monkeypatch.setattr(reads, "count_items", lambda **kw: _always(calls))
    stuck = itemctl("--as", "alice", "items", "count")
    assert stuck.exit_code == 4 and len(calls) == 3 and "deadlock" in stuck.stderr

    itemctl("--as", "alice", "items", "create", "once")
    duplicate = itemctl("--as", "alice", "items", "create", "once")
    assert duplicate.exit_code == 4 and "trying again" not in duplicate.stderr


def _always(calls):
    from sqlalchemy import exc

    calls.append(1)
    raise exc.OperationalError("SELECT 1", {}, _Deadlock("deadlock detected"))


def test_a_bug_is_exit_1_in_one_line_and_a_traceback_only_when_asked(itemctl, monkeypatch):
    from itemctl.services import reads

    def broken(**kw):
        raise RuntimeError("something we did not foresee")

    monkeypatch.setattr(reads, "count_items", broken)
    plain = itemctl("--as", "alice", "items", "count")
    assert plain.exit_code == 1 and len(plain.stderr.strip().splitlines()) == 1
    assert plain.stderr.startswith("error: internal error: RuntimeError") and "--verbose" in plain.stderr
    verbose = itemctl("-v", "--as", "alice", "items", "count")
    assert verbose.exit_code == 1 and "Traceback" in verbose.stderr


def test_a_connection_lost_during_commit_says_the_outcome_is_unknown(itemctl, monkeypatch):
    from sqlalchemy import exc
    from sqlmodel import Session

    class _Gone(Exception):
        sqlstate = "08006"

    def lost(self):
        raise exc.OperationalError("COMMIT", {}, _Gone("server closed the connection unexpectedly"))

    monkeypatch.setattr(Session, "commit", lost)
    result = itemctl("--as", "alice", "items", "create", "maybe")
    assert result.exit_code == 7
    assert "lost during COMMIT" in result.stderr and "may or may not" in result.stderr


LEFT_OUT = (
    "alembic",
    "sqlalchemy",
    "sqlmodel",
    "itemctl.models",
    "rich",
    "email_validator",
    "itemctl.services.bulk",
    "itemctl.services.dump",
    "typer.rich_utils",
)


@pytest.mark.parametrize(
    "args",
    [
        ["items", "list", "-o", "json"],
        ["items", "get", "00000000", "-o", "json"],
        ["items", "count"],
        ["users", "whoami", "-o", "json"],
    ],
    ids=lambda a: " ".join(a),
)
def test_a_read_command_leaves_out_what_it_does_not_need(backend, args):
    """No SQLAlchemy, SQLModel or models (a read runs on the driver alone), no Alembic,
    no Rich off a terminal, no email validation, no bulk machinery: which modules a read
    loads, not how long it takes."""
    import subprocess

    assert run_process("--database-url", backend.url, "--as", "reader", "items", "create", "seen").exit_code == 0
    code = (
        "import sys\n"
        "from itemctl.__main__ import run\n"
        f"sys.argv = ['itemctl', '--database-url', {backend.url!r}, '--as', 'reader', *{args!r}]\n"
        "code = run()\n"
        f"print(code, sorted(m for m in sys.modules if m.startswith({LEFT_OUT!r})), file=sys.stderr)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=process_env())
    assert completed.stderr.strip().splitlines()[-1] in ("0 []", "3 []"), completed.stderr  # items get 0: not found


def test_a_read_by_a_known_actor_checks_the_schema_and_finds_the_actor_in_one_query(backend):
    """``items count`` by a stored actor: the schema check and the actor are one statement,
    then the count (on PostgreSQL, after the transaction's timeouts)."""
    assert run_process("--database-url", backend.url, "--as", "counter", "items", "create", "one").exit_code == 0
    result = run_process("-v", "--database-url", backend.url, "--as", "counter", "items", "count")
    assert result.exit_code == 0 and result.stdout == "1\n"
    statements = [line for line in result.stderr.splitlines() if line.startswith("sql: ")]
    settings = ["set_config"] if backend.name == "postgresql" else []
    assert len(statements) == 2 + len(settings), statements
    assert "alembic_version" in statements[-2] and '"user"' in statements[-2]
    assert "count(*)" in statements[-1]


@pytest.mark.parametrize(
    "query", ["?application_name=mine", "?sslmode=disable&connect_timeout=3", "?options=-c%20search_path%3Dpublic"]
)
def test_a_read_takes_the_urls_libpq_parameters(pg_url, query):
    """The read commands' own connection reads the URL's query as the engine does: libpq
    parameters, with itemctl's own settings (application_name, timeouts) winning."""
    assert run_process("--database-url", pg_url, "--as", "reader", "items", "create", "one").exit_code == 0
    result = run_process("--database-url", pg_url + query, "--as", "reader", "items", "count")
    assert (result.exit_code, result.stdout) == (0, "1\n"), result.stderr


def test_a_name_not_found_is_echoed_cut_short(any_itemctl):
    """A 10,000-character name that matches nobody is echoed as the input gate echoes
    values: cut to about 60 characters, with its length."""
    long_name = "x" * 10_000
    assert any_itemctl("--as", "root", "users", "create", "root", "--admin").exit_code == 0
    for command in (["users", "get", long_name], ["items", "list", "--owner", long_name], ["tags", "delete", long_name, "--yes"]):
        result = any_itemctl("--as", "root", *command)
        assert result.exit_code == 3, (command, result.stderr)
        assert "(10,000 characters)" in result.stderr and len(result.stderr) < 300, result.stderr


def test_a_port_that_is_not_a_number_is_named(run):
    result = run("--database-url", "postgresql://u@127.0.0.1:abc/x", "items", "list")
    assert result.exit_code == 7
    assert "the port 'abc' is not a number" in result.stderr and "int()" not in result.stderr
