"""Drift statistics: PSI + KS over 1M rows x 100 features against the memory-bandwidth floor and against Evidently.

    .venv/bin/python -m bench.drift.run [--rows 1000000] [--features 100] [--skip-evidently]

1. Ours at full size: bin 1M x 100 float32 values on the reference profile's grids and compute PSI and KS for every
   feature (modelfleet.drift), next to the floor measured in the same run: one read pass over the same matrix (a
   column sum). Target: within 10x of the floor. (Where the time goes: two passes for the affine map, one cast that
   also proves the values finite, one clip, the pairing, and `np.bincount` over half as many indices as values.)
2. Against Evidently 0.7.23 (DataDriftPreset with method="psi" and method="ks", installed into its own virtual
   environment under ~/.cache/modelfleet/bench, pandas<3) on a 100k x 50 slice by default, where Evidently finishes
   in tens of seconds; `--evidently-rows 1000000 --evidently-features 100` runs it on the full data (about a quarter
   of an hour for Evidently). Ours on the same slice includes building the reference
   profile, since Evidently starts from raw data on both sides. Target: >= 100x faster. Both must flag the same
   shifted columns.
3. The per-row update cost in the model server: counting one request's rows into the window (30 features).
Best of --repeat runs for our timings (the machine is noisy); Evidently runs once (it takes long enough).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelfleet.drift.profile import build_profile
from modelfleet.drift.window import Reference

CACHE = Path(os.environ.get("MODELFLEET_CACHE_DIR", Path.home() / ".cache" / "modelfleet")) / "bench"
EVIDENTLY_VENV = CACHE / "evidently-venv"
EVIDENTLY_PINS = ["evidently==0.7.23", "pandas<3"]
SHIFTED = 10  # the first SHIFTED features of the current data move by +0.5 standard deviations


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def make_data(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.uniform(-5, 5, features).astype(np.float32)
    scales = rng.uniform(0.5, 3, features).astype(np.float32)
    reference = rng.standard_normal((rows, features), dtype=np.float32) * scales + means
    current = rng.standard_normal((rows, features), dtype=np.float32) * scales + means
    current[:, :SHIFTED] += 0.5 * scales[:SHIFTED]
    return reference, current


def reference_of(matrix: np.ndarray) -> Reference:
    profile = build_profile({f"f{i}": ("numeric", matrix[:, i]) for i in range(matrix.shape[1])})
    return Reference.from_profile(profile)


def psi_and_ks(reference: Reference, current: np.ndarray) -> dict[str, tuple[float, float]]:
    counts, _, _ = reference.count_matrix(current, tail_sums=False)
    return {
        name: tuple(reference.numeric_statistic(s, i, counts[i], (0.0, 0.0)) for s in ("psi", "ks"))
        for i, name in enumerate(reference.numeric)
    }


def ensure_evidently() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print("installing Evidently into", EVIDENTLY_VENV, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *EVIDENTLY_PINS], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument(
        "--evidently-rows", type=int, default=100_000, help="rows of the slice both run on (the full data: --rows)"
    )
    parser.add_argument("--evidently-features", type=int, default=50, help="features of that slice")
    args = parser.parse_args()

    print(f"## 1. PSI + KS over {args.rows:,} rows x {args.features} features (float32), one core")
    reference_data, current = make_data(args.rows, args.features)
    started = time.perf_counter()
    reference = reference_of(reference_data)
    print(f"reference profile (once, in the trainer): {time.perf_counter() - started:.2f} s")
    floor = best_of(args.repeat, lambda: current.sum(axis=0))
    ours = best_of(args.repeat, lambda: psi_and_ks(reference, current))
    values = psi_and_ks(reference, current)
    flagged = sorted((n for n, (p, _) in values.items() if p > 0.1), key=lambda n: int(n[1:]))
    print(f"floor (one read pass over the data): {floor * 1000:.1f} ms")
    print(f"ModelFleet PSI + KS:                 {ours * 1000:.1f} ms  = {ours / floor:.1f}x the floor (target <= 10x)")
    print(f"  flagged by PSI > 0.1: {len(flagged)} features (shifted: f0..f{SHIFTED - 1}): {', '.join(flagged)}")

    ev_rows, ev_cols = min(args.evidently_rows, args.rows), min(args.evidently_features, args.features)
    print(f"\n## 2. Against Evidently's data-drift preset, {ev_rows:,} rows x {ev_cols} features")
    ref_slice = np.ascontiguousarray(reference_data[:ev_rows, :ev_cols])
    cur_slice = np.ascontiguousarray(current[:ev_rows, :ev_cols])
    ours_slice = best_of(args.repeat, lambda: psi_and_ks(reference_of(ref_slice), cur_slice))
    print(f"ModelFleet (profile + PSI + KS): {ours_slice * 1000:.1f} ms")
    if args.skip_evidently:
        print("Evidently: skipped (--skip-evidently)")
    else:
        python = ensure_evidently()
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "ref.npy", ref_slice)
            np.save(Path(tmp) / "cur.npy", cur_slice)
            side = Path(__file__).with_name("evidently_side.py")
            out = subprocess.run(
                [str(python), str(side), str(Path(tmp) / "ref.npy"), str(Path(tmp) / "cur.npy")],
                check=True,
                capture_output=True,
                text=True,
            )
        evidently = json.loads(out.stdout.strip().splitlines()[-1])
        total = sum(evidently["seconds"].values())
        print(
            f"Evidently (psi {evidently['seconds']['psi']:.1f} s + ks {evidently['seconds']['ks']:.1f} s): "
            f"{total:.1f} s  -> ModelFleet is {total / ours_slice:.0f}x faster (target >= 100x)"
        )
        for method in ("psi", "ks"):
            flags = evidently["drifted"][method]
            print(f"  Evidently {method} flags {len(flags)}: {', '.join(flags)}")

    print("\n## 3. Per-row update cost in the model server (30 numeric features)")
    rng = np.random.default_rng(1)
    server_reference = reference_of(rng.standard_normal((20_000, 30)))
    calls = 2_000
    for rows in (1, 64):
        batch = {f"f{i}": rng.standard_normal(rows) for i in range(30)}

        seconds = best_of(args.repeat, lambda b=batch: [server_reference.count(b) for _ in range(calls)]) / calls
        print(f"  batches of {rows:>2} rows: {seconds * 1e6:7.1f} us per batch, {seconds / rows * 1e6:6.2f} us per row")


if __name__ == "__main__":
    main()
