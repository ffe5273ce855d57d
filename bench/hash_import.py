"""Bulk import of a hash list into SQLite: rows per second, beside a plain bulk_create baseline.

    .venv/bin/python bench/hash_import.py [--rows 1000000] [--batch-size 5000] [--keep]

Generates a cophub CSV of random PDQ hashes (quality 50-100), then runs, each
in its own process on its own fresh SQLite database (so neither inherits the
other's table or page cache):

- `baseline`: the same CSV read with the csv module, each row turned into a
  BankEntry and stored with Django's bulk_create in transactions of one batch:
  no validation, no lookup of existing entries, no feed;
- `import`: `services.import_signals` through `formats.read_csv`, exactly what
  `cophub hashes import` runs (normalising each value, one lookup query per
  batch, the feed lock, BankChange rows, the audit event).

Prints rows per second of each and the ratio. Data lives in a temporary
folder (or /tmp/h_hashes_bench with --keep), removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(path: Path, rows: int) -> None:
    rng = random.Random(20261201)
    with path.open("w", encoding="utf-8") as out:
        out.write("signal_type,value,quality,note,source,added_at\n")
        for _ in range(rows):
            out.write(f"pdq,{rng.getrandbits(256):064x},{rng.randint(50, 100)},,,\n")


def _setup(data_dir: str):
    os.environ["COPHUB_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cophub.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run_baseline(csv_path: Path, batch_size: int) -> int:
    import csv

    from django.db import transaction

    from cophub.hashbanks.models import Bank, BankEntry

    bank = Bank.objects.create(name="baseline", kind="imported")
    count = 0
    with csv_path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        batch = []
        for row in reader:
            batch.append(BankEntry(bank=bank, signal_type=row[0], value=row[1], quality=int(row[2])))
            if len(batch) == batch_size:
                with transaction.atomic():
                    BankEntry.objects.bulk_create(batch)
                count += len(batch)
                batch = []
        with transaction.atomic():
            BankEntry.objects.bulk_create(batch)
        count += len(batch)
    return count


def run_import(csv_path: Path, batch_size: int) -> int:
    from cophub.hashbanks import formats, services

    bank = services.create_bank("bench", "imported", actor="bench", shared=True)
    with csv_path.open("rb", buffering=1 << 20) as f:
        result = services.import_signals(bank, formats.read_csv(f), actor="bench", source="bench", batch_size=batch_size)
    assert result.refused_count == 0, result.refused[:5]
    return result.added


def child(mode: str, csv_path: Path, data_dir: str, batch_size: int) -> None:
    _setup(data_dir)
    started = time.perf_counter()
    count = (run_baseline if mode == "baseline" else run_import)(csv_path, batch_size)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": count, "seconds": seconds}))


def measure(mode: str, csv_path: Path, root: Path, batch_size: int) -> dict:
    data_dir = root / mode
    shutil.rmtree(data_dir, ignore_errors=True)
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--csv", str(csv_path), "--data-dir", str(data_dir),
                          "--batch-size", str(batch_size)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--keep", action="store_true", help="use /tmp/h_hashes_bench and keep it")
    parser.add_argument("--child", choices=["baseline", "import"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, Path(args.csv), args.data_dir, args.batch_size)

    root = Path("/tmp/h_hashes_bench") if args.keep else Path(tempfile.mkdtemp(prefix="hash-import-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        csv_path = root / "pdq.csv"
        started = time.perf_counter()
        generate(csv_path, args.rows)
        print(f"generated {args.rows:,} PDQ rows ({csv_path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s")
        results = {mode: measure(mode, csv_path, root, args.batch_size) for mode in ("baseline", "import")}
        for mode, r in results.items():
            print(f"{mode:9} {r['rows']:>10,} rows  {r['seconds']:7.1f} s  {r['rows'] / r['seconds']:>9,.0f} rows/s")
        ratio = (results["import"]["rows"] / results["import"]["seconds"]) / (results["baseline"]["rows"] / results["baseline"]["seconds"])
        print(f"import / baseline: {ratio:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
