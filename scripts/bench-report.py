#!/usr/bin/env python3
"""Turn criterion results of the cachet-crypto `nacl` benchmark into a markdown table.

Reads target/criterion/<group>/<function>/new/estimates.json (and benchmark.json beside
it, for the throughput), pairs the `cachet` and `libsodium` functions of each group and
prints one row per group:

    operation | cachet | libsodium | ratio

The ratio is libsodium time / cachet time: above 1 means cachet is faster, below 1 that
libsodium is. Times are criterion's mean point estimates (slope where criterion
computed one, i.e. for linear sampling).

Usage: scripts/bench-report.py [CRITERION_DIR ...] [--filter SUBSTRING]

With several directories (copies of target/criterion from repeated runs), each time is
the median over the runs, and the ratio is computed from those medians: on a shared or
noisy machine this is steadier than any single run. Standard library only.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

SIDES = ("cachet", "libsodium")

# Rows in reading order; groups not listed follow in alphabetical order.
ORDER = (
    "secretbox_seal_open_200B",
    "secretbox_seal_open_64KiB",
    "secretbox_seal_open_2MiB",
    "box_seal_200B_fresh_x25519",
    "box_seal_200B_precomputed",
    "ed25519_sign_200B",
    "ed25519_verify_200B",
    "ed25519_verify_batch_64",
    "attachment_v2_seal_256MiB",
    "attachment_v2_seal_1GiB_2_workers",
)


def order_key(name: str):
    return (ORDER.index(name), "") if name in ORDER else (len(ORDER), name)


def load(function_dir: Path):
    """Mean time in nanoseconds and throughput dict (or None) of one function."""
    estimates_path = function_dir / "new" / "estimates.json"
    if not estimates_path.is_file():
        return None
    estimates = json.loads(estimates_path.read_text())
    # criterion reports "slope" for linear sampling; "mean" always.
    estimate = estimates.get("slope") or estimates["mean"]
    mean_ns = estimate["point_estimate"]
    throughput = None
    meta_path = function_dir / "new" / "benchmark.json"
    if meta_path.is_file():
        throughput = json.loads(meta_path.read_text()).get("throughput")
    return mean_ns, throughput


def fmt_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.0f} ns"


def fmt_rate(mb_per_s: float) -> str:
    return f"{mb_per_s:.0f} MB/s" if mb_per_s >= 10 else f"{mb_per_s:.2g} MB/s"


def fmt_throughput(ns: float, throughput) -> str:
    if not throughput:
        return ""
    if "Bytes" in throughput:
        return fmt_rate(throughput["Bytes"] / ns * 1e9 / 1e6)
    if "BytesDecimal" in throughput:
        return fmt_rate(throughput["BytesDecimal"] / ns * 1e9 / 1e6)
    if "Elements" in throughput:
        per_element = ns / throughput["Elements"]
        return f"{fmt_time(per_element)}/item"
    return ""


def cell(result) -> str:
    ns, throughput = result
    extra = fmt_throughput(ns, throughput)
    return f"{fmt_time(ns)} ({extra})" if extra else fmt_time(ns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "criterion"
    parser.add_argument("criterion_dirs", nargs="*", type=Path, default=[default_dir])
    parser.add_argument("--filter", default="", help="only groups whose name contains this")
    args = parser.parse_args()

    for directory in args.criterion_dirs:
        if not directory.is_dir():
            print(f"no criterion results in {directory}; run "
                  "`cargo bench -p cachet-crypto --bench nacl` first", file=sys.stderr)
            return 1

    names = {
        p.name
        for directory in args.criterion_dirs
        for p in directory.iterdir()
        if p.is_dir() and p.name != "report" and args.filter in p.name
    }
    rows = []
    for name in sorted(names, key=order_key):
        medians = {}
        for side in SIDES:
            runs = [load(d / name / side) for d in args.criterion_dirs]
            runs = [r for r in runs if r is not None]
            if runs:
                medians[side] = (statistics.median(r[0] for r in runs), runs[0][1])
        if len(medians) != len(SIDES):
            continue
        cachet, libsodium = medians["cachet"], medians["libsodium"]
        ratio = libsodium[0] / cachet[0]
        row = [name, cell(cachet), cell(libsodium), f"{ratio:.2f}×"]
        if len(args.criterion_dirs) > 1:
            per_run = []
            for d in args.criterion_dirs:
                c, l = load(d / name / "cachet"), load(d / name / "libsodium")
                if c is not None and l is not None:
                    per_run.append(l[0] / c[0])
            row.append(f"{min(per_run):.2f}–{max(per_run):.2f} ({len(per_run)} runs)")
        rows.append(row)

    if not rows:
        print("no group with both a `cachet` and a `libsodium` result", file=sys.stderr)
        return 1

    header = ["operation", "cachet", "libsodium", "libsodium time / cachet time"]
    if len(args.criterion_dirs) > 1:
        header.append("ratio, lowest–highest run")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
