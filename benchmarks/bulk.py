"""Bulk import and export throughput against PostgreSQL's own \\copy, in one run.

    uv run python benchmarks/bulk.py                 # 1,000,000 rows
    uv run python benchmarks/bulk.py --rows 100000 --rows 3000000
    uv run python benchmarks/bulk.py --large          # 1,000,000 then 3,000,000 rows
    uv run python benchmarks/bulk.py --quick          # only the insert-mode imports
    uv run python benchmarks/bulk.py --quick --repeat 3   # each import three times: medians

For each size it generates N items (100 owners; 0-3 of 50 tags each) as CSV, then times:

  (a)  psql \\copy of the same rows, pre-resolved, into copies of item and item_tag that
       have exactly itemctl's indexes and foreign keys (the baseline);
  (b)  itemctl items import of the CSV into a fresh migrated database;
  (b') the same with --exclusive;
  (p)  (b) from a pipe: cat items.csv | itemctl items import -;
  (s)  itemctl items import --mode skip, and (u) --mode upsert, of the same file into the
       database of (b), which already holds every row;
  (c)  itemctl items export --format csv of all items;
  (d)  psql \\copy (SELECT …) TO STDOUT of the same columns.

and prints rows/s, the peak RSS of each itemctl process, the phase timings each import
reports with -v (client CPU, items, links, indexes, constraints; or stage, check, write),
the WAL each load wrote and the checkpoints during it,
and the ratios (b)/(a), (b')/(a), (p)/(a),
(s)/(a), (u)/(a) and (c)/(d). Databases are created on the server at --server (default: the
local one as role postgres) and dropped at the end.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from timing import Run, print_ratios, print_runs, run

import psycopg

ROOT = Path(__file__).resolve().parent.parent
OWNERS = 100
TAGS = 50


class Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = psycopg.connect(url, autocommit=True)
        self.created: list[str] = []

    def database(self, name: str) -> str:
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url_of(name)

    def url_of(self, name: str) -> str:
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{name}"

    def with_wal(self, step) -> Run:
        """Run a timed step; add the WAL it wrote and the checkpoints during it to its phases (the
        same rows should write the same WAL, and a checkpoint mid-load costs full-page
        images: the first thing to compare when two loads differ). Both are the server's
        own counts: run nothing else against it meanwhile."""
        before = self.admin.execute("SELECT pg_current_wal_lsn(), checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").fetchone()
        result = step()
        wal, checkpoints = self.admin.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s), checkpoints_timed + checkpoints_req - %s FROM pg_stat_bgwriter",
            before,
        ).fetchone()
        result.phases = ", ".join(filter(None, [result.phases, f"WAL {int(wal) // 1_000_000:,} MB, {checkpoints} checkpoint{'' if checkpoints == 1 else 's'}"]))
        return result

    def drop_all(self) -> None:
        for name in self.created:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def itemctl(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "itemctl", "--database-url", url, "-q", *args]


def importing(url: str, *args: str) -> list[str]:
    """items import with -v, which prints the phase timings (and the few statements)."""
    return [sys.executable, "-m", "itemctl", "--database-url", url, "-v", "--as", "bench-admin", "items", "import", *args, "--no-progress"]


def prepare(url: str) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Migrate, then create the admin, the owners and the tags; their ids."""
    run(itemctl(url, "db", "migrate"))
    owner_ids = [uuid.uuid4() for _ in range(OWNERS)]
    tag_ids = [uuid.uuid4() for _ in range(TAGS)]
    with psycopg.connect(url) as conn:
        conn.execute(
            'INSERT INTO "user" (id, username, is_admin, created_at) VALUES (%s, %s, true, now())',
            (uuid.uuid4(), "bench-admin"),
        )
        with conn.cursor().copy('COPY "user" (id, username, is_admin, created_at) FROM STDIN') as copy:
            for n, owner_id in enumerate(owner_ids):
                copy.write_row((owner_id, f"user{n:03d}", False, "now"))
        with conn.cursor().copy("COPY tag (id, name) FROM STDIN") as copy:
            for n, tag_id in enumerate(tag_ids):
                copy.write_row((tag_id, f"tag{n:02d}"))
    return owner_ids, tag_ids


def generate(rows: int, directory: Path, owner_ids, tag_ids) -> tuple[Path, Path, Path, int]:
    """The import CSV, and the same rows pre-resolved for the baseline; the link count."""
    rng = random.Random(42)
    items_csv = directory / "items.csv"
    base_items = directory / "base_item.csv"
    base_links = directory / "base_item_tag.csv"
    links = 0
    with (
        open(items_csv, "w", newline="") as f_in,
        open(base_items, "w", newline="") as f_item,
        open(base_links, "w", newline="") as f_link,
    ):
        source, item_rows, link_rows = csv.writer(f_in), csv.writer(f_item), csv.writer(f_link)
        source.writerow(["title", "description", "owner", "tags"])
        for i in range(rows):
            owner = rng.randrange(OWNERS)
            chosen = rng.sample(range(TAGS), rng.randrange(4))
            title = f"item {i:08d}"
            description = f"generated item {i}, owned by user{owner:03d}; {rng.random():.6f}"
            source.writerow([title, description, f"user{owner:03d}", ";".join(f"tag{t:02d}" for t in chosen)])
            item_id = uuid.uuid4()
            item_rows.writerow([item_id, title, description, owner_ids[owner], "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"])
            for t in chosen:
                link_rows.writerow([item_id, tag_ids[t]])
            links += len(chosen)
    return items_csv, base_items, base_links, links


BASELINE_TABLES = """
CREATE TABLE base_item (LIKE item INCLUDING ALL);
ALTER TABLE base_item ADD FOREIGN KEY (owner_id) REFERENCES "user" (id) ON DELETE CASCADE;
CREATE TABLE base_item_tag (LIKE item_tag INCLUDING ALL);
ALTER TABLE base_item_tag ADD FOREIGN KEY (item_id) REFERENCES base_item (id) ON DELETE CASCADE;
ALTER TABLE base_item_tag ADD FOREIGN KEY (tag_id) REFERENCES tag (id) ON DELETE CASCADE;
"""

EXPORT_QUERY = (
    "SELECT i.title, i.description, u.username AS owner, "
    "(SELECT string_agg(t.name, ';' ORDER BY lower(t.name), t.name) FROM item_tag it "
    "JOIN tag t ON t.id = it.tag_id WHERE it.item_id = i.id) AS tags "
    'FROM item i JOIN "user" u ON u.id = i.owner_id ORDER BY i.created_at, u.username COLLATE "C", i.title COLLATE "C"'
)


def checkpoint(server: Server) -> None:
    """Each timed step starts with no dirty pages left by the one before it: otherwise the
    checkpoint that the previous load's WAL triggers lands in the next step's time."""
    server.admin.execute("CHECKPOINT")


def psql(url: str, *args: str, stdout=subprocess.DEVNULL) -> Run:
    return run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, *args], stdout=stdout)


def baseline(server: Server, base_url: str, work: Path, base_items: Path, base_links: Path) -> Run:
    """(a): psql's own \\copy of the pre-resolved rows into tables like itemctl's, in one
    transaction; its phases from psql's \\timing."""
    psql(base_url, "-c", "DROP TABLE IF EXISTS base_item_tag, base_item;" + BASELINE_TABLES)
    checkpoint(server)
    with open(work / "psql-timing.txt", "w+b") as timing:
        result = server.with_wal(lambda: psql(
            base_url,
            "-1",
            "-c", "\\timing on",
            "-c", f"\\copy base_item (id, title, description, owner_id, created_at, updated_at) FROM '{base_items}' CSV",
            "-c", f"\\copy base_item_tag (item_id, tag_id) FROM '{base_links}' CSV",
            stdout=timing,
        ))
        timing.seek(0)
        times = [float(line.split()[1]) / 1000 for line in timing.read().decode().splitlines() if line.startswith("Time:")]
    if len(times) == 2:
        result.phases = f"items {times[0]:.2f} s, links {times[1]:.2f} s, {result.phases}"
    return result


def fresh_import(server: Server, name: str, items_csv: Path, *flags: str) -> Run:
    """(b), (b'): itemctl items import into a fresh migrated database."""
    url = server.database(name)
    prepare(url)
    checkpoint(server)
    return server.with_wal(lambda: run(importing(url, str(items_csv), *flags)))


def piped_import(server: Server, name: str, items_csv: Path) -> Run:
    """(p): (b) from a pipe, as scripts run it: ``cat items.csv | itemctl items import -``."""
    import shlex

    url = server.database(name)
    prepare(url)
    checkpoint(server)
    command = " ".join(shlex.quote(part) for part in importing(url, "-"))
    return server.with_wal(lambda: run(["sh", "-c", f"cat {shlex.quote(str(items_csv))} | {command}"]))


def measure(server: Server, rows: int, keep: Path | None, quick: bool = False, repeat: int = 1) -> dict[str, Run]:
    work = Path(tempfile.mkdtemp(prefix="itemctl-bench-", dir=keep))
    results: dict[str, Run] = {}
    try:
        base_url = server.database(f"itemctl_bench_base_{rows}")
        owner_ids, tag_ids = prepare(base_url)
        items_csv, base_items, base_links, links = generate(rows, work, owner_ids, tag_ids)
        print(f"\n{rows:,} items, {links:,} tag links; CSV {items_csv.stat().st_size / 1e6:.0f} MB", flush=True)

        steps = {
            "a  psql \\copy (baseline)": lambda: baseline(server, base_url, work, base_items, base_links),
            "b  itemctl import": lambda: fresh_import(server, f"itemctl_bench_import_{rows}", items_csv),
            "b' itemctl import --exclusive": lambda: fresh_import(
                server, f"itemctl_bench_exclusive_{rows}", items_csv, "--exclusive"
            ),
            "p  cat file | itemctl import -": lambda: piped_import(server, f"itemctl_bench_piped_{rows}", items_csv),
        }
        runs: dict[str, list[Run]] = {name: [] for name in steps}
        for attempt in range(repeat):
            # Every other attempt in reverse order, so that neither side always goes first.
            for name in list(steps) if attempt % 2 == 0 else reversed(list(steps)):
                runs[name].append(steps[name]())
        for name, attempts in runs.items():
            attempts.sort(key=lambda run: run.seconds)
            results[name] = attempts[len(attempts) // 2]  # the median attempt
            if repeat > 1:
                print(f"{name:45} " + ", ".join(f"{run.seconds:.2f}" for run in attempts) + " s")
        url = server.url_of(f"itemctl_bench_import_{rows}")  # (b)'s database, which the steps below read
        for other in ("exclusive", "piped"):
            server.admin.execute(f'DROP DATABASE IF EXISTS "itemctl_bench_{other}_{rows}" WITH (FORCE)')
        if quick:
            report(rows, results)
            return results

        for mode in ("skip", "upsert"):
            checkpoint(server)
            results[f"{mode[0]}  itemctl import --mode {mode} (all present)"] = run(
                importing(url, str(items_csv), "--mode", mode)
            )

        with open(work / "export.csv", "wb") as out:
            results["c  itemctl export --format csv"] = run(itemctl(url, "--as", "bench-admin", "items", "export"), stdout=out)
        with open(work / "psql-export.csv", "wb") as out:
            results["d  psql \\copy (select ...) to stdout"] = psql(
                url, "-c", f"\\copy ({EXPORT_QUERY}) TO STDOUT WITH (FORMAT csv, HEADER true)", stdout=out
            )
        same = (work / "export.csv").read_bytes() == (work / "psql-export.csv").read_bytes()
        print(f"export output identical to psql's: {same}")
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    report(rows, results)
    return results


def report(rows: int, results: dict[str, Run]) -> None:
    print_runs(rows, results, rss_for="bcsup")
    a = results["a  psql \\copy (baseline)"].seconds
    d = results["d  psql \\copy (select ...) to stdout"].seconds if "d  psql \\copy (select ...) to stdout" in results else None
    goal = 1.1 if rows >= 10_000_000 else 1.05  # the targets: 1.05x to 3M rows, 1.1x at 10M
    print_ratios(results, [
        ("(b)/(a)  import", "b  itemctl import", a, goal),
        ("(b')/(a) import --exclusive", "b' itemctl import --exclusive", a, 0.5),
        ("(p)/(a)  import from a pipe", "p  cat file | itemctl import -", a, goal),
        ("(s)/(a)  import --mode skip", "s  itemctl import --mode skip (all present)", a, 1.5),
        ("(u)/(a)  import --mode upsert", "u  itemctl import --mode upsert (all present)", a, 1.5),
        ("(c)/(d)  export", "c  itemctl export --format csv", d, 1.1),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="items to generate (repeatable; default 1,000,000)")
    parser.add_argument("--server", default=os.environ.get("ITEMCTL_BENCH_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--keep", type=Path, help="keep the generated files under this directory")
    parser.add_argument("--large", action="store_true", help="also 3,000,000 rows (after the sizes given)")
    parser.add_argument("--quick", action="store_true", help="only (a), (b) and (b'): the insert-mode imports")
    parser.add_argument("--repeat", type=int, default=1, help="run (a), (b) and (b') this many times, alternating their order; report the median")
    args = parser.parse_args()
    sizes = (args.rows or [1_000_000]) + ([3_000_000] if args.large else [])
    server = Server(args.server)
    try:
        for rows in sizes:
            measure(server, rows, args.keep, args.quick, args.repeat)
    finally:
        server.drop_all()


if __name__ == "__main__":
    main()
