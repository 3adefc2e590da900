"""`modelfleet status` formatting."""

from __future__ import annotations

from modelfleet.report import table


def test_status_table_shows_owner_versions_metrics_drift_and_gpu_hours() -> None:
    served = {
        "metadata": {"namespace": "ml", "name": "churn"},
        "spec": {"owner": {"team": "growth"}, "riskClass": "limited"},
        "status": {
            "phase": "Serving",
            "servingVersion": {"number": 2, "metrics": {"roc_auc": 0.981, "accuracy": 0.93}, "reason": "drift"},
            "latestVersion": {"number": 2, "reason": "drift"},
            "drift": {"score": 0.0412, "worstFeature": "tenure"},
            "utilization": {"gpuHours": 1.5},
            "conditions": [{"type": "Drifted", "status": "False"}],
        },
    }
    fresh = {"metadata": {"namespace": "ml", "name": "new"}, "spec": {"owner": {"team": "risk"}}}
    lines = table([served, fresh]).splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "MODEL",
        "OWNER",
        "RISK",
        "PHASE",
        "SERVING",
        "LATEST",
        "METRICS",
        "DRIFT",
        "GPU-H",
        "DRIFTED",
    ]
    assert lines[1].split() == [
        "ml",
        "churn",
        "growth",
        "limited",
        "Serving",
        "v2",
        "v2",
        "(drift)",
        "accuracy=0.930",
        "roc_auc=0.981",
        "0.04",
        "(tenure)",
        "1.50",
        "False",
    ]
    assert lines[2].split() == ["ml", "new", "risk", "minimal", "Pending", "-", "-", "-", "-", "-", "-"]
