"""Training overhead: `python -m modelfleet.trainer` (reads, hashes, validates, fits, evaluates, profiles, writes an
atomic artifact with lineage) against a bare scikit-learn fit + predict on the same data, in the same run.

    .venv/bin/python -m bench.training.run [--rows 200000] [--pairs 3]

Both run as whole processes (imports and CSV parsing included on both sides), alternately A B A B, so drift in the
machine's speed hits both; it prints the medians and the median of the pairwise ratios. Target: ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.datasets import write

from bench.training.params import HYPERPARAMETERS, ROWS, SPLIT

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelfleet-bench-"))
    try:
        data = write("breast_cancer", work / "data.csv", n_rows=args.rows)
        # Numeric features only, so both sides learn from exactly the same matrix.
        import pyarrow.csv as pacsv

        names = [n for n in pacsv.read_csv(data).column_names if n not in ("target", "size_band")]
        pacsv.write_csv(pacsv.read_csv(data).select([*names, "target"]), data)
        spec = {
            "framework": "sklearn",
            "task": "classification",
            "dataset": {
                "uri": data.as_uri(),
                "target": "target",
                "features": [{"name": n, "type": "numeric"} for n in names],
            },
            "training": {
                "estimator": "sklearn.ensemble.RandomForestClassifier",
                "hyperparameters": HYPERPARAMETERS,
                "validation": {"split": SPLIT},
            },
        }
        env = {**os.environ, "MODELFLEET_TRAINING_SPEC": json.dumps(spec), "PYTHONPATH": str(ROOT)}
        trainer = [
            sys.executable,
            "-m",
            "modelfleet.trainer",
            "--output-dir",
            str(work / "artifact"),
            "--termination-log",
            str(work / "result.json"),
        ]
        bare = [sys.executable, "-m", "bench.training.bare_fit", str(data)]
        timed(bare, env)  # warm-up: page cache and bytecode
        ours, peer = [], []
        for _ in range(args.pairs):
            ours.append(timed(trainer, env))
            peer.append(timed(bare, env))
        ratios = [a / b for a, b in zip(ours, peer, strict=True)]
        result = json.loads((work / "result.json").read_text())
        print(f"dataset: {args.rows} rows x {len(names)} numeric features, RandomForest {HYPERPARAMETERS}")
        print(
            f"trainer (fit + evaluate + profile + artifact + lineage): median {statistics.median(ours):.2f} s "
            f"(runs {', '.join(f'{x:.2f}' for x in ours)}); accuracy {result['metrics']['accuracy']:.4f}"
        )
        print(
            f"bare scikit-learn fit + predict:                        median {statistics.median(peer):.2f} s "
            f"(runs {', '.join(f'{x:.2f}' for x in peer)})"
        )
        ratio = statistics.median(ratios)
        print(
            f"ratio trainer / bare (median of {args.pairs} pairs): {ratio:.3f}  -> overhead "
            f"{(ratio - 1) * 100:+.1f}% (target <= +10%)"
        )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
