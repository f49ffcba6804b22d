"""Start-up and listing latency of itemctl against the floors of its stack, in one run.

    uv run python benchmarks/cli.py                    # 1,000,000 items, 10 runs each
    uv run python benchmarks/cli.py --rows 100000 --runs 5

Fills a fresh database (100 owners, 0-3 of 50 tags per item) through `itemctl items
import`, then prints the median wall time of each command below, the ratios to the
references, and EXPLAIN for the listing queries (flagging any sequential scan of item or
item_tag), and `items list` and `--version` started with and without compiled bytecode
under PYTHONDONTWRITEBYTECODE=1. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bulk  # noqa: E402  (the generator and helpers of the bulk benchmark)

FIRST_PAGE = """
SELECT i.id, i.title, i.description, u.username, i.created_at, i.updated_at
FROM item i JOIN "user" u ON u.id = i.owner_id
ORDER BY i.created_at DESC, i.id DESC LIMIT 100
"""

SQLMODEL_REFERENCE = """
import json, sys
from sqlmodel import Session, create_engine, select
from sqlalchemy import text
engine = create_engine(sys.argv[1].replace("postgresql://", "postgresql+psycopg://"))
with Session(engine) as session:
    rows = session.execute(text('''{page}''')).all()
    ids = [r[0] for r in rows]
    tags = {{}}
    for item_id, name in session.execute(text(
        "SELECT it.item_id, t.name FROM item_tag it JOIN tag t ON t.id = it.tag_id WHERE it.item_id = ANY(:ids)"
    ), {{"ids": ids}}):
        tags.setdefault(item_id, []).append(name)
    print(json.dumps([{{"id": str(r[0]), "title": r[1], "description": r[2], "owner": r[3],
        "tags": sorted(tags.get(r[0], [])), "created_at": r[4].isoformat(), "updated_at": r[5].isoformat()}} for r in rows]))
""".format(page=FIRST_PAGE)

# The bare SQLModel script for the other reads: the statements each answer needs, run
# through a SQLModel session, the rows printed as JSON.
SQLMODEL_STATEMENTS = """
import json, sys
from sqlmodel import Session, create_engine
from sqlalchemy import text
engine = create_engine(sys.argv[1].replace("postgresql://", "postgresql+psycopg://"))
with Session(engine) as session:
    print(json.dumps([[[str(v) for v in row] for row in session.execute(text(sql)).all()] for sql in sys.argv[2:]]))
"""

GET_BY_PREFIX = """
SELECT i.id, i.title, i.description, u.username, i.created_at, i.updated_at
FROM item i JOIN "user" u ON u.id = i.owner_id
WHERE i.id >= '{low}'::uuid AND i.id <= '{high}'::uuid ORDER BY i.id LIMIT 6
"""
TAGS_OF = "SELECT it.item_id, t.name FROM item_tag it JOIN tag t ON t.id = it.tag_id WHERE it.item_id >= '{low}'::uuid AND it.item_id <= '{high}'::uuid"
COUNT_OWNER = "SELECT count(*) FROM item i WHERE i.owner_id = (SELECT id FROM \"user\" WHERE username = 'user042')"
WHOAMI = "SELECT id, username, email, is_admin, created_at FROM \"user\" WHERE username = 'bench-admin'"
WHOAMI_COUNT = "SELECT count(*) FROM item WHERE owner_id = (SELECT id FROM \"user\" WHERE username = 'bench-admin')"

PSYCOPG_REFERENCE = """
import json, sys
import psycopg
with psycopg.connect(sys.argv[1]) as conn:
    rows = conn.execute('''{page}''').fetchall()
    ids = [r[0] for r in rows]
    tags = {{}}
    for item_id, name in conn.execute(
        "SELECT it.item_id, t.name FROM item_tag it JOIN tag t ON t.id = it.tag_id WHERE it.item_id = ANY(%s)", (ids,)
    ):
        tags.setdefault(item_id, []).append(name)
    print(json.dumps([{{"id": str(r[0]), "title": r[1], "description": r[2], "owner": r[3],
        "tags": sorted(tags.get(r[0], [])), "created_at": r[4].isoformat(), "updated_at": r[5].isoformat()}} for r in rows]))
""".format(page=FIRST_PAGE)


def median_seconds(argv: list[str], runs: int, env: dict | None = None) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        completed = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        times.append(time.perf_counter() - started)
        if completed.returncode != 0:
            raise SystemExit(f"{argv[:5]} failed: {completed.stderr.decode()}")
    return statistics.median(times)


def bytecode_runs(argv: list[str], runs: int) -> dict[str, float]:
    """``argv`` started with every module's bytecode at hand, and with none of it, both under
    PYTHONDONTWRITEBYTECODE=1 (as in containers and CI images, where nothing is written at
    run time). Each case gets its own PYTHONPYCACHEPREFIX: filled by one warm-up run for the
    first, left empty for the second, so the installed .pyc files play no part in either."""
    results = {}
    with tempfile.TemporaryDirectory() as compiled, tempfile.TemporaryDirectory() as empty:
        warm = {**os.environ, "PYTHONPYCACHEPREFIX": compiled}
        warm.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=warm, check=True)
        for label, prefix in (("bytecode compiled", compiled), ("nothing compiled", empty)):
            env = {**os.environ, "PYTHONPYCACHEPREFIX": prefix, "PYTHONDONTWRITEBYTECODE": "1"}
            results[label] = median_seconds(argv, runs, env)
    return results


def installed_bytecode() -> str:
    """How many of the environment's modules have bytecode beside them (uv sync compiles
    them when [tool.uv] compile-bytecode is set)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    sources = list(site.rglob("*.py"))
    compiled = sum(1 for source in sources if any(source.parent.glob(f"__pycache__/{source.stem}.*.pyc")))
    return f"{compiled:,} of {len(sources):,} modules in site-packages have bytecode"


def explain(url: str, label: str, sql: str) -> None:
    with psycopg.connect(url) as conn:
        plan = [row[0] for row in conn.execute("EXPLAIN " + sql)]
    scans = [line.strip() for line in plan if "Seq Scan on item" in line]
    print(f"\n-- {label}: {'SEQUENTIAL SCAN: ' + '; '.join(scans) if scans else 'no sequential scan of item or item_tag'}")
    print("\n".join(plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--server", default=os.environ.get("ITEMCTL_BENCH_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    server = bulk.Server(args.server)
    py = sys.executable
    try:
        url = server.database(f"itemctl_bench_cli_{args.rows}")
        owner_ids, tag_ids = bulk.prepare(url)
        with tempfile.TemporaryDirectory() as work:
            items_csv, _, _, _ = bulk.generate(args.rows, Path(work), owner_ids, tag_ids)
            fill = bulk.run(bulk.itemctl(url, "--as", "bench-admin", "items", "import", str(items_csv), "--no-progress"))
        print(f"filled by itemctl items import: {fill.seconds:.1f} s, {args.rows / fill.seconds:,.0f} rows/s, peak RSS {fill.peak_rss_mb:.0f} MB")
        with psycopg.connect(url) as conn:
            conn.execute("ANALYZE")
            prefix = str(conn.execute("SELECT id FROM item ORDER BY created_at DESC, id DESC LIMIT 1").fetchone()[0])[:8]
        # The checkout's own modules compiled once, as an installed wheel's are: under
        # PYTHONDONTWRITEBYTECODE=1 an editable install would compile them on every start.
        package = Path(__file__).resolve().parent.parent / "itemctl"
        subprocess.run([py, "-m", "compileall", "-q", str(package)], check=True, stdout=subprocess.DEVNULL)
        print(f"{args.rows:,} items; median of {args.runs} interleaved runs each, itemctl's own modules compiled")

        itemctl = [py, "-m", "itemctl", "--database-url", url, "--as", "bench-admin"]
        low, high = prefix.ljust(32, "0"), prefix.ljust(32, "f")
        by_prefix = [GET_BY_PREFIX.format(low=low, high=high), TAGS_OF.format(low=low, high=high)]
        commands = {
            "python -c pass": [py, "-c", "pass"],
            'python -c "import typer"': [py, "-c", "import typer"],
            "reference: sqlmodel + psycopg, first page": [py, "-c", SQLMODEL_REFERENCE, url],
            "reference: sqlmodel, get by prefix": [py, "-c", SQLMODEL_STATEMENTS, url, *by_prefix],
            "reference: sqlmodel, count of an owner": [py, "-c", SQLMODEL_STATEMENTS, url, COUNT_OWNER],
            "reference: sqlmodel, whoami": [py, "-c", SQLMODEL_STATEMENTS, url, WHOAMI, WHOAMI_COUNT],
            "floor: psycopg alone, first page": [py, "-c", PSYCOPG_REFERENCE, url],
            "itemctl --version": [py, "-m", "itemctl", "--version"],
            "itemctl --help": [py, "-m", "itemctl", "--help"],
            "itemctl items list -o json": itemctl + ["items", "list", "-o", "json"],
            "itemctl items list --tag tag07": itemctl + ["items", "list", "--tag", "tag07", "-o", "json"],
            "itemctl items get PREFIX": itemctl + ["items", "get", prefix, "-o", "json"],
            "itemctl items count --owner user042": itemctl + ["items", "count", "--owner", "user042"],
            "itemctl users whoami": itemctl + ["users", "whoami", "-o", "json"],
            "psql -c (first page)": ["psql", "-X", "-q", url, "-c", FIRST_PAGE],
        }
        medians = {}
        # Interleaved rounds: a change in the machine's load falls on every command alike.
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(median_seconds(argv, 1))
        for name in commands:
            medians[name] = statistics.median(times[name])
            print(f"{name:45} {medians[name] * 1000:8.0f} ms  (spread {min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f})", flush=True)

        print(f"\nstart-up under PYTHONDONTWRITEBYTECODE=1 ({installed_bytecode()}):")
        for name, argv in (("itemctl --version", commands["itemctl --version"]), ("itemctl items list -o json", commands["itemctl items list -o json"])):
            cases = bytecode_runs(argv, args.runs)
            for label, seconds in cases.items():
                print(f"{name + ', ' + label:45} {seconds * 1000:8.0f} ms")
            print(f"{'':45} {cases['nothing compiled'] / cases['bytecode compiled']:7.1f}x slower without bytecode")

        print("\nratios (targets from the start-up issue: reads <= 1.0x the bare SQLModel script on the same query, --help <= 1.3x import typer):")
        for name, base_name, target in (
            ("itemctl --version", 'python -c "import typer"', 1.3),
            ("itemctl --help", 'python -c "import typer"', 1.3),
            ("itemctl items list -o json", "reference: sqlmodel + psycopg, first page", 1.0),
            ("itemctl items get PREFIX", "reference: sqlmodel, get by prefix", 1.0),
            ("itemctl items count --owner user042", "reference: sqlmodel, count of an owner", 1.0),
            ("itemctl users whoami", "reference: sqlmodel, whoami", 1.0),
            ("itemctl items list -o json", "floor: psycopg alone, first page", 1.5),
        ):
            ratio = medians[name] / medians[base_name]
            print(f"{name:36} / {base_name:42} {ratio:5.2f}x  (target <= {target}x: {'met' if ratio <= target else 'MISSED'})")

        explain(url, "items list (first page, newest first)", FIRST_PAGE)
        explain(
            url,
            "items list --tag tag07",
            "SELECT i.id FROM item i WHERE EXISTS (SELECT 1 FROM item_tag it JOIN tag t ON t.id = it.tag_id "
            "WHERE it.item_id = i.id AND lower(t.name) = lower('tag07')) ORDER BY i.created_at DESC, i.id DESC LIMIT 100",
        )
        explain(
            url,
            "items list --owner user042",
            "SELECT i.id FROM item i WHERE i.owner_id = (SELECT id FROM \"user\" WHERE username = 'user042') "
            "ORDER BY i.created_at DESC, i.id DESC LIMIT 100",
        )
        explain(url, "items count --owner user042", "SELECT count(*) FROM item i WHERE i.owner_id = (SELECT id FROM \"user\" WHERE username = 'user042')")
        explain(url, "items get PREFIX", f"SELECT * FROM item WHERE id >= '{prefix}000000000000000000000000'::uuid AND id <= '{prefix}ffffffffffffffffffffffff'::uuid LIMIT 6")
    finally:
        server.drop_all()


if __name__ == "__main__":
    main()
