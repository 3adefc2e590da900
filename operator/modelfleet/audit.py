"""`modelfleet lineage`, `modelfleet audit` and `modelfleet card`: answers from the ModelVersion records, with the
user's own kubeconfig and RBAC (reading modelversions is all they need).

- lineage: every version trained on a dataset (by sha256 digest or by URI), where it is and whether it serves.
- audit: a model's history in time order (trained, rejected or rolled back, approved by whom, served, retired,
  deleted), across every model of that name the records remember.
- card: a version's model card.

The functions that shape answers are pure; `fetch_records` is the only one that talks to the API server."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from modelfleet.vocabulary import LABEL_MODEL

HEX_DIGEST = re.compile(r"^(sha256:)?([0-9a-f]{64})$")


def dataset_selector(dataset: str) -> tuple[str, str]:
    """(field path, value) to find records of a dataset given as a sha256 digest (with or without `sha256:`) or as
    its URI."""
    match = HEX_DIGEST.match(dataset.strip().lower())
    if match:
        return "spec.dataset.digest", f"sha256:{match.group(2)}"
    return "spec.dataset.uri", dataset.strip()


def _escape(value: str) -> str:
    """A field selector value as the API server parses it (fields.EscapeValue)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _field(record: Mapping[str, Any], path: str) -> Any:
    node: Any = record
    for step in path.split("."):
        node = node.get(step) if isinstance(node, Mapping) else None
    return node


def fetch_records(
    namespace: str | None, *, fields: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """ModelVersion records, filtered on the API server (selectableFields; an older server that refuses the field
    selector is answered by filtering here)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from modelfleet.api.v1alpha1 import GROUP, VERSION
    from modelfleet.clients.kube import api_client

    custom = client.CustomObjectsApi(api_client())
    kwargs: dict[str, Any] = {"_preload_content": False}
    if labels:
        kwargs["label_selector"] = ",".join(f"{k}={v}" for k, v in labels.items())

    def listing(**extra: Any) -> list[dict[str, Any]]:
        if namespace:
            resp = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions", **kwargs, **extra)
        else:
            resp = custom.list_cluster_custom_object(GROUP, VERSION, "modelversions", **kwargs, **extra)
        return list(json.loads(resp.data)["items"])

    if not fields:
        return listing()
    try:
        return listing(field_selector=",".join(f"{k}={_escape(v)}" for k, v in fields.items()))
    except ApiException as e:
        if e.status != 400:
            raise
    return [r for r in listing() if all(str(_field(r, k) or "") == v for k, v in fields.items())]


def _key(record: Mapping[str, Any]) -> tuple[str, str, int]:
    spec = record.get("spec") or {}
    ns = str((record.get("metadata") or {}).get("namespace", ""))
    return ns, str((spec.get("modelRef") or {}).get("name", "")), int(spec.get("version") or 0)


def lineage(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per version: where it is, what it was trained on, and whether it serves now (or when it stopped)."""
    out = []
    for record in sorted(records, key=_key):
        spec, status = record.get("spec") or {}, record.get("status") or {}
        intervals = status.get("serving") or []
        serving_now = bool(intervals) and not intervals[-1].get("end") and not status.get("modelDeletedAt")
        out.append(
            {
                "namespace": _key(record)[0],
                "model": _key(record)[1],
                "version": _key(record)[2],
                "record": (record.get("metadata") or {}).get("name"),
                "trainedAt": spec.get("trainedAt"),
                "dataset": {k: (spec.get("dataset") or {}).get(k) for k in ("uri", "version", "digest", "rows")},
                "artifact": (spec.get("artifact") or {}).get("uri"),
                "state": status.get("state"),
                "servingNow": serving_now,
                "servedFrom": intervals[0].get("start") if intervals else None,
                "servedUntil": None if serving_now or not intervals else intervals[-1].get("end"),
                "modelDeletedAt": status.get("modelDeletedAt"),
            }
        )
    return out


def lineage_table(entries: Sequence[Mapping[str, Any]]) -> str:
    rows = [("NAMESPACE", "MODEL", "VERSION", "STATE", "SERVING", "TRAINED", "DATASET")]
    for e in entries:
        serving = "now" if e["servingNow"] else f"until {e['servedUntil']}" if e["servedUntil"] else "never"
        dataset = e["dataset"]
        rows.append(
            (
                e["namespace"],
                e["model"],
                f"v{e['version']}",
                str(e["state"] or "-"),
                serving,
                str(e["trainedAt"] or "-"),
                f"{dataset.get('uri')} ({dataset.get('digest') or '-'})",
            )
        )
    return _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _metrics(spec: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted((spec.get("metrics") or {}).items()))


def audit_trail(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The model's history from its records, oldest first: one entry per fact (time, version, action, detail)."""
    trail: list[dict[str, Any]] = []

    def add(time: Any, version: int, action: str, detail: str, uid: str) -> None:
        if time:
            trail.append({"time": time, "version": version, "action": action, "detail": detail, "modelUid": uid})

    for record in records:
        spec, status = record.get("spec") or {}, record.get("status") or {}
        n, uid = int(spec.get("version") or 0), str((spec.get("modelRef") or {}).get("uid", ""))
        reason = spec.get("reason") or "manual"
        what = "drift-retrained" if reason == "drift" else "trained"
        cached = f" (cache hit of {spec['cachedFrom']})" if spec.get("cachedFrom") else ""
        dataset = spec.get("dataset") or {}
        add(
            spec.get("trainedAt"),
            n,
            what,
            f"by {spec.get('trainingJob')}{cached}, reason {reason}, data {dataset.get('uri')} "
            f"({dataset.get('digest') or 'no digest'}); {_metrics(spec)}",
            uid,
        )
        rejected = status.get("rejectedReason") or ""
        if rejected:
            action = "rolled-back" if rejected.startswith("rollout failed") else "rejected"
            add(status.get("rejectedAt"), n, action, rejected, uid)
        if status.get("approvedBy"):
            add(status.get("approvedAt"), n, "approved", f"by {status['approvedBy']}", uid)
        for interval in status.get("serving") or []:
            add(interval.get("start"), n, "served", "started serving", uid)
            replaced = interval.get("replacedBy")
            if interval.get("end"):
                detail = (
                    f"replaced by v{replaced}"
                    if replaced and replaced > n
                    else f"rolled back to v{replaced}"
                    if replaced
                    else "stopped serving"
                )
                add(interval["end"], n, "stopped", detail, uid)
        add(status.get("retiredAt"), n, "retired", "no longer served", uid)
        add(status.get("modelDeletedAt"), n, "deleted", "its MLModel was deleted", uid)
    order = {"trained": 0, "drift-retrained": 0, "rejected": 1, "rolled-back": 1, "approved": 2, "stopped": 3}
    # Equal times (one pass sees a start and an end): the end of the old version first, then the start of the new.
    trail.sort(key=lambda e: (e["time"], order.get(e["action"], 4), e["version"]))
    return trail


def audit_table(trail: Sequence[Mapping[str, Any]]) -> str:
    rows = [("TIME", "VERSION", "ACTION", "DETAIL")]
    rows += [(str(e["time"]), f"v{e['version']}", str(e["action"]), str(e["detail"])) for e in trail]
    return _table(rows)


def pick_record(records: Sequence[Mapping[str, Any]], version: int | None) -> Mapping[str, Any] | None:
    """The record of `version`; without one, the version serving now, else the newest (of the current model: the
    newest uid's records when several models of the name existed)."""
    if not records:
        return None
    if version is not None:
        matches = [r for r in records if _key(r)[2] == version]
        return (
            max(matches, key=lambda r: str((r.get("metadata") or {}).get("creationTimestamp", ""))) if matches else None
        )
    serving = [r for r in records if (r.get("status") or {}).get("state") == "Serving"]
    if serving:
        return serving[0]
    return max(records, key=lambda r: (str((r.get("metadata") or {}).get("creationTimestamp", "")), _key(r)[2]))


def model_records(namespace: str, model: str) -> list[dict[str, Any]]:
    return fetch_records(namespace, labels={LABEL_MODEL: model})
