"""`modelfleet status`: one line per MLModel — owner, phase, versions, the serving version's metrics, drift, GPU use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COLUMNS = ("NAMESPACE", "MODEL", "OWNER", "RISK", "PHASE", "SERVING", "LATEST", "METRICS", "DRIFT", "GPU-H", "DRIFTED")


def _metrics(version: dict[str, Any] | None) -> str:
    if not version or not version.get("metrics"):
        return "-"
    items = sorted(version["metrics"].items())[:2]
    return " ".join(f"{k}={v:.3f}" for k, v in items)


def _condition(obj: dict[str, Any], ctype: str) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return str(c.get("status"))
    return "-"


def row(model: dict[str, Any]) -> tuple[str, ...]:
    meta, spec, status = model.get("metadata", {}), model.get("spec", {}), model.get("status") or {}
    serving, latest = status.get("servingVersion"), status.get("latestVersion")
    drift = status.get("drift") or {}
    score = drift.get("score")
    drift_text = f"{score:.2f} ({drift.get('worstFeature')})" if isinstance(score, int | float) else "-"
    gpu_hours = (status.get("utilization") or {}).get("gpuHours")
    return (
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        str((spec.get("owner") or {}).get("team", "-")),
        str(spec.get("riskClass", "minimal")),
        str(status.get("phase") or "Pending"),
        f"v{serving['number']}" if serving else "-",
        f"v{latest['number']} ({latest.get('reason') or '-'})" if latest else "-",
        _metrics(serving or latest),
        drift_text,
        f"{gpu_hours:.2f}" if isinstance(gpu_hours, int | float) else "-",
        _condition(model, "Drifted"),
    )


def table(models: Sequence[dict[str, Any]]) -> str:
    rows = [
        COLUMNS,
        *(row(m) for m in sorted(models, key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def list_models(namespace: str | None = None) -> list[dict[str, Any]]:
    import json

    from kubernetes import client

    from modelfleet.api.v1alpha1 import GROUP, VERSION
    from modelfleet.clients.kube import api_client

    custom = client.CustomObjectsApi(api_client())
    if namespace:
        resp = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "mlmodels", _preload_content=False)
    else:
        resp = custom.list_cluster_custom_object(GROUP, VERSION, "mlmodels", _preload_content=False)
    return list(json.loads(resp.data)["items"])
