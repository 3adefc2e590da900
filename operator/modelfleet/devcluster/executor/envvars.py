"""Container environment, as the kubelet builds it: explicit values with $(VAR) expansion, fieldRef, resourceFieldRef,
configMapKeyRef, secretKeyRef and envFrom. Pure: the ConfigMap and Secret look-ups are passed in."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

Lookup = Callable[[str, str], Mapping[str, str] | None]  # (namespace, name) -> data, None when it does not exist

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


class EnvError(Exception):
    """A reference that cannot be resolved: the kubelet's CreateContainerConfigError."""


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined variables are replaced, `$$` escapes `$`, undefined ones stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR.sub(sub, value)


def field_value(path: str, pod: Mapping[str, Any], pod_ip: str | None, host_ip: str) -> str:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip or "",
        "status.podIPs": pod_ip or "",
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEM_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def resource_value(container: Mapping[str, Any], resource: str, divisor: str | None) -> str:
    kind, _, name = resource.partition(".")
    qty = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if qty is None:
        return "0"
    if name == "cpu":
        m = _CPU.match(str(qty))
        cores = float(m.group(1)) / (1000 if m.group(2) else 1) if m else 0.0
        div = _CPU.match(divisor or "1")
        div_cores = float(div.group(1)) / (1000 if div.group(2) else 1) if div else 1.0
        return str(math.ceil(cores / div_cores))
    m2 = re.match(r"^(\d+)([A-Za-z]*)$", str(qty))
    if not m2:
        return str(qty)
    return str(int(m2.group(1)) * _MEM_SUFFIX.get(m2.group(2), 1))


def build_env(
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    *,
    pod_ip: str | None,
    host_ip: str,
    configmaps: Lookup,
    secrets: Lookup,
    base: Mapping[str, str],
) -> dict[str, str]:
    """The environment of one container: `base` (PATH and the service variables), then envFrom, then env."""
    ns = pod.get("metadata", {}).get("namespace", "default")
    env: dict[str, str] = dict(base)

    def source(kind: str, name: str, optional: bool) -> Mapping[str, str]:
        data = (configmaps if kind == "configMap" else secrets)(ns, name)
        if data is None:
            if optional:
                return {}
            raise EnvError(f'{kind} "{name}" not found')
        return data

    for ef in container.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        for kind in ("configMap", "secret"):
            ref = ef.get(f"{kind}Ref")
            if ref:
                for k, v in source(kind, ref["name"], bool(ref.get("optional"))).items():
                    env[prefix + k] = v

    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        vf = var.get("valueFrom") or {}
        if "fieldRef" in vf:
            env[name] = field_value(vf["fieldRef"]["fieldPath"], pod, pod_ip, host_ip)
        elif "resourceFieldRef" in vf:
            rf = vf["resourceFieldRef"]
            env[name] = resource_value(container, rf["resource"], rf.get("divisor"))
        elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
            kind = "configMap" if "configMapKeyRef" in vf else "secret"
            ref = vf[f"{kind}KeyRef"]
            data = source(kind, ref["name"], bool(ref.get("optional")))
            if ref["key"] in data:
                env[name] = data[ref["key"]]
            elif not ref.get("optional"):
                raise EnvError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")
        else:
            env[name] = ""
    return env


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args with $(VAR) expansion. With no command the args are the command line: the executor has no
    image, so it cannot supply an entrypoint."""
    argv = [expand(a, env) for a in (container.get("command") or [])]
    argv += [expand(a, env) for a in (container.get("args") or [])]
    if not argv:
        raise EnvError("container has no command or args (the local executor ignores images and their entrypoints)")
    return argv
