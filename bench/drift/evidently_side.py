"""Runs inside Evidently's own virtual environment (see run.py): times its data-drift report on the .npy files given.

python evidently_side.py REF.npy CUR.npy   ->  one JSON line: {"seconds": {...}, "drifted": {...}}
"""

import json
import sys
import time

import numpy as np
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset


def main() -> None:
    ref, cur = np.load(sys.argv[1]), np.load(sys.argv[2])
    columns = [f"f{i}" for i in range(ref.shape[1])]
    reference, current = pd.DataFrame(ref, columns=columns), pd.DataFrame(cur, columns=columns)
    seconds, drifted = {}, {}
    for method, threshold in (("psi", 0.1), ("ks", 0.05)):
        started = time.perf_counter()
        snapshot = Report([DataDriftPreset(method=method)]).run(current_data=current, reference_data=reference)
        seconds[method] = time.perf_counter() - started
        values = {m["config"]["column"]: m["value"] for m in snapshot.dict()["metrics"] if "column" in m["config"]}
        # PSI drifts above its threshold; KS reports a p-value, which drifts below it.
        drifted[method] = sorted(c for c, v in values.items() if (v > threshold if method == "psi" else v < threshold))
    print(json.dumps({"seconds": seconds, "drifted": drifted}))


if __name__ == "__main__":
    main()
