"""How often drift statistics cry wolf, and how often they catch a real shift.

    .venv/bin/python -m bench.drift.calibration [--trials 200] [--family normal] [--seed 0]

For each reference size (100 / 1,000 / 10,000 rows) and window size (100 / 500 / 1,000 / 10,000 rows), `--trials`
times: draw a reference and build its profile exactly as the trainer does, draw a window from the same distribution
(no drift) and count it exactly as the server does, and read PSI and KS for the feature. The table gives the fraction
of no-drift windows above PSI 0.1 and 0.2 and above KS 0.1 (false alarms), and the fraction of windows shifted by
0.5 and 1 standard deviation that PSI puts above 0.2 (detection).

Targets (issue "drift statistics that do not cry wolf"): false alarms at PSI 0.2 at most 1 % for every reference of
100 rows or more and every window of 500 rows or more; a 1 sigma shift detected in at least 99 % of such windows.
"""

from __future__ import annotations

import argparse

import numpy as np

from modelfleet.drift.profile import build_profile
from modelfleet.drift.window import Reference

REFERENCE_SIZES = (100, 1_000, 10_000)
WINDOW_SIZES = (100, 500, 1_000, 10_000)
SHIFTS = (0.5, 1.0)


def draw(rng: np.random.Generator, family: str, n: int) -> np.ndarray:
    if family == "normal":
        return rng.normal(size=n)
    if family == "lognormal":
        return (rng.lognormal(size=n) - np.exp(0.5)) / np.sqrt((np.e - 1) * np.e)  # standardised
    if family == "discrete":
        return (rng.poisson(2.0, n) - 2.0) / np.sqrt(2.0)
    raise SystemExit(f"unknown family {family!r} (normal, lognormal, discrete)")


def psi_and_ks(reference: Reference, window: np.ndarray) -> tuple[float, float]:
    values = reference.statistics(reference.count({"x": window}, tail_sums=False), ("psi", "ks"))["x"]
    return values["psi"], values["ks"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--family", default="normal")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"## Drift calibration: {args.trials} trials per cell, {args.family} data, seed {args.seed}")
    print("reference | window | PSI bins | FA PSI>0.1 | FA PSI>0.2 | FA KS>0.1 | detect 0.5sd | detect 1sd (PSI>0.2)")
    print("---|---|---|---|---|---|---|---")
    failures = []
    for n_ref in REFERENCE_SIZES:
        for n_win in WINDOW_SIZES:
            quiet: list[tuple[float, float]] = []
            caught = {s: 0 for s in SHIFTS}
            bins = 0
            for _ in range(args.trials):
                reference = Reference.from_profile(build_profile({"x": ("numeric", draw(rng, args.family, n_ref))}))
                bins = int(reference.psi_bins[0])
                quiet.append(psi_and_ks(reference, draw(rng, args.family, n_win)))
                for shift in SHIFTS:
                    caught[shift] += psi_and_ks(reference, draw(rng, args.family, n_win) + shift)[0] > 0.2
            psi = np.array([q[0] for q in quiet])
            ks = np.array([q[1] for q in quiet])
            fa01, fa02, fa_ks = (psi > 0.1).mean(), (psi > 0.2).mean(), (ks > 0.1).mean()
            detect = {s: caught[s] / args.trials for s in SHIFTS}
            print(
                f"{n_ref:,} | {n_win:,} | {bins} | {fa01:.1%} | {fa02:.1%} | {fa_ks:.1%} | "
                f"{detect[0.5]:.1%} | {detect[1.0]:.1%}"
            )
            if n_win >= 500 and (fa02 > 0.01 or detect[1.0] < 0.99):
                failures.append(f"reference {n_ref}, window {n_win}")
    print("targets (FA at PSI 0.2 <= 1 %, 1sd detected >= 99 %, windows >= 500 rows):", end=" ")
    print("met" if not failures else "missed for " + "; ".join(failures))


if __name__ == "__main__":
    main()
