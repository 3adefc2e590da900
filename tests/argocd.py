"""Runs the Argo CD health checks (manifests/argocd, Lua) on objects, as Argo CD does: Lua 5.1, `obj` as a global.

Integration and end-to-end tests call `check_health` on objects the real operator wrote, with the health they expect.
With MODELFLEET_ARGOCD_CAPTURE=1 each such object is also saved as a test case in Argo CD's own layout
(`testdata/<case>.yaml` plus an entry in `health_test.yaml`), which `tests/unit/test_argocd_health.py` replays and
`tests/integration/test_argocd_engine.py` judges with Argo CD's own engine (`engine_health`)."""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CUSTOMIZATIONS = ROOT / "manifests" / "argocd" / "resource_customizations"
ARGOCD_CM = CUSTOMIZATIONS.parent / "argocd-cm.yaml"
ENGINE_BUILD = ROOT / "hack" / "argocd-health.sh"


@functools.cache
def engine_binary() -> str:
    """Argo CD's own health engine (hack/argocd-health), built on first use; a failed build fails the test with the
    step and its log, never a skip."""
    res = subprocess.run(["bash", str(ENGINE_BUILD)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise AssertionError(f"building Argo CD's health engine failed (hack/argocd-health.sh):\n{res.stderr}")
    return res.stdout.strip().splitlines()[-1]


def engine_health(objects: list[dict[str, Any]], argocd_cm: Path = ARGOCD_CM) -> list[dict[str, str]]:
    """Each object's health as Argo CD's application controller computes it, with the overrides of `argocd_cm`."""
    res = subprocess.run(
        [engine_binary(), str(argocd_cm)], input=json.dumps(objects), capture_output=True, text=True, timeout=120
    )
    if res.returncode != 0:
        raise AssertionError(f"argocd-health failed: {res.stderr}")
    return list(json.loads(res.stdout))


def script(kind: str) -> str:
    return (CUSTOMIZATIONS / "modelfleet.io" / kind / "health.lua").read_text()


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> dict[str, str]:
    from lupa import lua51

    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    # Argo CD opens only the base, table and package libraries unless resource.customizations.useOpenLibs is set;
    # closing the rest here keeps this fast replay as strict as the engine (tests/integration/test_argocd_engine.py).
    for library in ("string", "math", "io", "os", "coroutine", "debug"):
        lua.globals()[library] = None
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(script(obj["kind"]))
    return {"status": str(result["status"]), "message": str(result["message"] or "")}


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    meta = out.get("metadata", {})
    for key in ("managedFields", "uid", "resourceVersion", "creationTimestamp", "ownerReferences", "finalizers"):
        meta.pop(key, None)
    meta["namespace"] = "ml"
    for key in list(meta.get("annotations") or {}):
        if key.startswith("kopf.zalando.org/") or key == "kubectl.kubernetes.io/last-applied-configuration":
            meta["annotations"].pop(key)
    return out


def check_health(obj: dict[str, Any] | None, expected: str, case: str) -> dict[str, str]:
    assert obj is not None
    got = health(obj)
    assert got["status"] == expected, f"{case}: Argo CD health {got} for status {obj.get('status')}"
    if os.environ.get("MODELFLEET_ARGOCD_CAPTURE") == "1":
        directory = CUSTOMIZATIONS / "modelfleet.io" / obj["kind"]
        (directory / "testdata").mkdir(parents=True, exist_ok=True)
        (directory / "testdata" / f"{case}.yaml").write_text(yaml.safe_dump(_clean(obj), sort_keys=False))
        tests_file = directory / "health_test.yaml"
        tests = (yaml.safe_load(tests_file.read_text()) if tests_file.exists() else None) or {"tests": []}
        tests["tests"] = [t for t in tests["tests"] if t["inputPath"] != f"testdata/{case}.yaml"]
        tests["tests"].append({"healthStatus": got, "inputPath": f"testdata/{case}.yaml"})
        tests["tests"].sort(key=lambda t: t["inputPath"])
        tests_file.write_text(yaml.safe_dump(tests, sort_keys=False, width=200))
    return got
