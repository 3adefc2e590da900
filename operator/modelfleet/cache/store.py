"""What the reconcilers read, kept in memory from watches: our three kinds whole, and of the children (Jobs, their
pods, Deployments and their pods) only the fields a decision reads.

Written by the watch handlers on the event loop, read by reconcile passes on worker threads (a lock guards both;
readers get deep copies, so a pass can never change what the next one sees). Lookups go through indexes (labels,
owner, selectable fields), so a pass costs the same at 10 models and at 10,000."""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.vocabulary import KUEUE_JOB_UID, LABEL_JOB_NAME, LABEL_MODEL, LABEL_TRAININGJOB, Key

# The label and field paths lookups go through, per kind. Anything else is filtered after the indexed narrowing.
INDEXED: dict[str, tuple[str, ...]] = {
    "TrainingJob": (f"label:{LABEL_MODEL}", "status.fingerprint", "status.cachedFrom"),
    "DriftPolicy": ("spec.modelRef.name",),
    "ModelVersion": (f"label:{LABEL_MODEL}",),
    "Pod": (f"label:{LABEL_JOB_NAME}", f"label:{LABEL_MODEL}", f"label:{LABEL_TRAININGJOB}"),
    "Workload": (f"label:{KUEUE_JOB_UID}",),
}
# Paths indexed also where the field is absent (as "", which is what a selector matches then): the runs that trained
# (`status.cachedFrom` absent) are few, while every cache hit of a fleet shares one fingerprint, so the cache-source
# search narrows by this one (by the fingerprint alone it read all 5,000 hits on every pass: quadratic).
INDEXED_WHEN_ABSENT = frozenset({("TrainingJob", "status.cachedFrom")})
# Annotations that can be large and that no decision reads.
DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "labels",
    "annotations",
    "ownerReferences",
    "creationTimestamp",
    "deletionTimestamp",
    "finalizers",
)


def _metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: meta[k] for k in KEPT_METADATA if meta.get(k) is not None}
    if "annotations" in out:
        out["annotations"] = {
            k: v
            for k, v in out["annotations"].items()
            if k not in DROPPED_ANNOTATIONS and not k.startswith("kopf.zalando.org/")
        }
    return out


def _pick(obj: Mapping[str, Any] | None, *keys: str) -> dict[str, Any]:
    return {k: obj[k] for k in keys if obj and obj.get(k) is not None}


def slim(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an object the cache keeps: all of ours, the read fields of children."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    out: dict[str, Any] = {"metadata": _metadata(body.get("metadata") or {})}
    if kind in ("MLModel", "TrainingJob", "DriftPolicy"):
        out["spec"], out["status"] = copy.deepcopy(dict(spec)), copy.deepcopy(dict(status))
    elif kind == "ModelVersion":  # a record's pass reads whose version it is; the lineage stays on the server
        out["spec"], out["status"] = _pick(spec, "modelRef", "version"), copy.deepcopy(dict(status))
    elif kind == "Job":
        out["spec"] = _pick(spec, "suspend")
        out["status"] = copy.deepcopy(dict(status))
    elif kind == "Pod":
        out["spec"] = _pick(spec, "nodeName", "restartPolicy")
        out["status"] = copy.deepcopy(_pick(status, "phase", "conditions", "containerStatuses", "podIP"))
    elif kind == "Workload":  # Kueue's admission of a Job: its conditions and the ClusterQueue that admitted it
        out["spec"] = _pick(spec, "queueName")
        out["status"] = copy.deepcopy(_pick(status, "conditions"))
        if status.get("admission"):
            out["status"]["admission"] = _pick(status["admission"], "clusterQueue")
    elif kind == "Deployment":
        template = (spec.get("template") or {}).get("metadata") or {}
        out["spec"] = {
            **_pick(spec, "replicas"),
            "template": {"metadata": {"labels": dict(template.get("labels") or {})}},
        }
        out["status"] = copy.deepcopy(dict(status))
    else:
        raise ValueError(f"the cache does not keep {kind}")
    return out


def _value(obj: Mapping[str, Any], path: str) -> Any:
    if path.startswith("label:"):
        return ((obj.get("metadata") or {}).get("labels") or {}).get(path[len("label:") :])
    node: Any = obj
    for step in path.split("."):
        node = node.get(step) if isinstance(node, Mapping) else None
    return node


def _indexed_value(kind: str, obj: Mapping[str, Any], path: str) -> Any:
    value = _value(obj, path)
    return "" if value is None and (kind, path) in INDEXED_WHEN_ABSENT else value


def _text(value: Any) -> str:
    """A value as a selector compares it: a missing field matches "" (as `status.cachedFrom=` would)."""
    return "" if value is None else str(value)


def resource_version(obj: Mapping[str, Any] | None) -> int | None:
    """The object's resourceVersion as a number, where it is one (etcd revisions are; the API calls them opaque, so
    a version that is not a number is never compared)."""
    raw = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return None


def _version_text(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


@dataclass(frozen=True)
class Change:
    """What a watch event did to the cache: the object before and after (None when absent)."""

    key: Key
    old: dict[str, Any] | None
    new: dict[str, Any] | None


class Store:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
        # (kind, namespace, path, value) -> names
        self._index: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)

    def _unindex(self, kind: str, namespace: str, name: str, obj: Mapping[str, Any]) -> None:
        for path in INDEXED.get(kind, ()):
            value = _indexed_value(kind, obj, path)
            if value is not None:
                names = self._index.get((kind, namespace, path, str(value)))
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self._index[(kind, namespace, path, str(value))]

    def upsert(self, kind: str, body: Mapping[str, Any]) -> Change:
        """Keeps the slim object; an event older than what is kept (a lagging watch) changes nothing."""
        obj = slim(kind, body)
        meta = obj["metadata"]
        namespace, name = str(meta.get("namespace", "")), str(meta["name"])
        key = Key(kind, namespace, name)
        with self._lock:
            old = self._objects[(kind, namespace)].get(name)
            have, got = resource_version(old), resource_version(obj)
            if old is not None and have is not None and got is not None and got < have:
                return Change(key, old, old)
            if old is not None:
                self._unindex(kind, namespace, name, old)
            self._objects[(kind, namespace)][name] = obj
            for path in INDEXED.get(kind, ()):
                value = _indexed_value(kind, obj, path)
                if value is not None:
                    self._index[(kind, namespace, path, str(value))].add(name)
        return Change(key, old, obj)

    def delete(self, kind: str, namespace: str, name: str) -> Change:
        key = Key(kind, namespace, name)
        with self._lock:
            old = self._objects[(kind, namespace)].pop(name, None)
            if old is not None:
                self._unindex(kind, namespace, name, old)
        return Change(key, old, None)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get((kind, namespace), {}).get(name)
            return copy.deepcopy(obj) if obj is not None else None

    def peek(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The kept object itself, not a copy: for the watch handlers' cheap checks, never to be changed."""
        with self._lock:
            return self._objects.get((kind, namespace), {}).get(name)

    def _matches(self, kind: str, namespace: str, match: Mapping[str, str]) -> list[dict[str, Any]]:
        """The kept objects `select` answers with, by name (the lock is held)."""
        objects = self._objects.get((kind, namespace), {})
        narrowed: list[set[str]] = [
            self._index.get((kind, namespace, p, v), set())
            for p, v in match.items()
            if p in INDEXED.get(kind, ()) and (v != "" or (kind, p) in INDEXED_WHEN_ABSENT)
        ]
        smallest = min(narrowed, key=lambda names: len(names)) if narrowed else objects.keys()
        found = [objects[n] for n in sorted(smallest) if n in objects]
        return [o for o in found if all(_text(_value(o, p)) == v for p, v in match.items())]

    def select(self, kind: str, namespace: str, match: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Objects whose labels ("label:<key>") and field paths equal `match` ("" matching a missing field), through
        the narrowest index that answers (an index holds "" only where it is kept for absent fields); only the
        matches are copied."""
        with self._lock:
            return copy.deepcopy(self._matches(kind, namespace, dict(match or {})))

    def version(self, kind: str, namespace: str, name: str) -> str | None:
        """The kept object's resourceVersion (None: not kept), without copying it."""
        with self._lock:
            obj = self._objects.get((kind, namespace), {}).get(name)
            return _version_text(obj) if obj is not None else None

    def versions(self, kind: str, namespace: str, match: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """(name, resourceVersion) of what `select` would answer, without copying it."""
        with self._lock:
            return tuple((str(o["metadata"]["name"]), _version_text(o)) for o in self._matches(kind, namespace, match))

    def keys(self, kind: str | None = None) -> list[Key]:
        with self._lock:
            return [
                Key(k, ns, name)
                for (k, ns), objects in self._objects.items()
                if kind is None or k == kind
                for name in objects
            ]

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(len(objects) for (k, _), objects in self._objects.items() if k == kind)

    def namespaces(self, kind: str) -> list[str]:
        with self._lock:
            return sorted(ns for (k, ns), objects in self._objects.items() if k == kind and objects)

    def where(self, kind: str, test: Callable[[Mapping[str, Any]], bool]) -> list[Key]:
        """Keys of the objects of a kind that pass `test` (which must not keep or change what it is given)."""
        with self._lock:
            return [
                Key(kind, ns, name)
                for (k, ns), objects in self._objects.items()
                if k == kind
                for name, obj in objects.items()
                if test(obj)
            ]
