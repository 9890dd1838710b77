"""How fast `dialer leads import` is, and how long it keeps other writers out of SQLite.

Generates a CSV of N valid US leads (default 100 000), imports it with the real CLI
path (`dialer leads import`, E.164 numbers, a US default region) into a new SQLite
file in a temporary directory, and prints rows/s, the total time and the longest
write transaction (the longest time the import held SQLite's write lock, during
which the daemon's own lease and outcome writes wait).

    .venv/bin/python benchmarks/lead_import.py                # 100 000 rows
    .venv/bin/python benchmarks/lead_import.py --rows 20000
    PYTHONPATH=../dialer-old .venv/bin/python benchmarks/lead_import.py   # another checkout

A second run of the same file into the same database (--again) shows the cost of
the duplicate checks (every row already in the campaign).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

import dialer
from dialer.cli.main import main

AREA_CODES = (212, 213, 305, 312, 404, 415, 503, 602, 617, 702, 713, 808, 907)


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("phone,name,customer_id,value,plan\n")
        for i in range(rows):
            area = AREA_CODES[i % len(AREA_CODES)]
            exchange = 200 + (i // len(AREA_CODES)) // 10_000
            number = (i // len(AREA_CODES)) % 10_000
            out.write(f"+1 {area} {exchange} {number:04d},Customer {i},C{i},{i % 5000}.50,plan-{i % 7}\n")


def write_setup(workdir: Path) -> Path:
    (workdir / "campaigns").mkdir()
    (workdir / "campaigns" / "bench.yaml").write_text(
        "name: bench\ntype: telemarketing\ntrunk: PJSIP/{number}@carrier\ncaller_id: '+15550100'\n"
        "queue: sales\nnumbers:\n  default_region: US\n"
    )
    config = workdir / "dialer.yaml"
    config.write_text(
        "ami:\n  - {username: dialer, secret: x}\n"
        f"database: {{url: 'sqlite+aiosqlite:///{workdir}/bench.db'}}\n"
        f"campaign_dir: {workdir}/campaigns\n"
    )
    return config


class Transactions:
    """Times every database transaction from its first write to its commit."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.longest = 0.0
        self.count = 0

    def install(self) -> None:
        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "commit", self._end)
        event.listen(Engine, "rollback", self._end)

    def _statement(self, conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.started.setdefault(id(conn), time.perf_counter())

    def _end(self, conn) -> None:  # noqa: ANN001
        began = self.started.pop(id(conn), None)
        if began is not None:
            self.longest = max(self.longest, time.perf_counter() - began)
            self.count += 1


def run_import(config: Path, leads: Path, transactions: Transactions) -> tuple[int, float, str]:
    transactions.longest = 0.0
    transactions.count = 0
    err = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = main(["leads", "import", "bench", str(leads), "--config", str(config)])
    return code, time.perf_counter() - began, err.getvalue()


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--again", action="store_true", help="import the same file a second time")
    args = parser.parse_args()
    transactions = Transactions()
    transactions.install()
    print(f"dialer from {Path(dialer.__file__).parent}")
    with tempfile.TemporaryDirectory(prefix="lead-import-") as tmp:
        workdir = Path(tmp)
        config = write_setup(workdir)
        leads = workdir / "leads.csv"
        write_csv(leads, args.rows)
        runs = ("first", "again") if args.again else ("first",)
        for run in runs:
            code, seconds, err = run_import(config, leads, transactions)
            if code != 0:
                print(err[-2000:], file=sys.stderr)
                print(f"{run}: exit {code}", file=sys.stderr)
                return 1
            print(
                f"{run}: {args.rows} rows in {seconds:.2f} s = {args.rows / seconds:,.0f} rows/s; "
                f"{transactions.count} write transaction(s), the longest {transactions.longest * 1000:.0f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main_())
