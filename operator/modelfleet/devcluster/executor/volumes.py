"""Pod volumes mapped to local directories.

emptyDir lives in the pod's directory; persistentVolumeClaim resolves to the bound PersistentVolume's hostPath (the
dev cluster's provisioner creates one stable directory per claim); configMap, secret, downwardAPI and projected
(service-account token, ca.crt, namespace) are written as files when the pod starts, as the kubelet does on first
mount. Updates to a ConfigMap after the pod started are not propagated.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelfleet.devcluster.executor.envvars import EnvError, field_value


class VolumeError(Exception):
    """A volume cannot be prepared yet (missing ConfigMap, unbound claim): the pod waits, as with a kubelet."""


@dataclass
class ClusterReads:
    """The reads volumes need, passed in so this module does no I/O against the API itself."""

    configmap: Callable[[str, str], Mapping[str, str] | None]
    secret: Callable[[str, str], Mapping[str, str] | None]  # data as the API returns it (base64)
    secret_text: Callable[[str, str], Mapping[str, str] | None]  # decoded, for environment variables
    claim_path: Callable[[str, str], Path | None]  # (namespace, claim) -> host directory of the bound volume
    service_account_token: Callable[[Mapping[str, Any], str | None, int], str]  # (pod, audience, seconds) -> token
    root_ca: Callable[[], str]


def _write_files(target: Path, files: Mapping[str, bytes], mode: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)


def _select(
    data: Mapping[str, bytes], items: list[dict[str, Any]] | None, what: str, optional: bool
) -> dict[str, bytes]:
    if not items:
        return dict(data)
    out = {}
    for item in items:
        if item["key"] in data:
            out[item["path"]] = data[item["key"]]
        elif not optional:
            raise VolumeError(f"{what}: key {item['key']!r} not found")
    return out


def _configmap_files(reads: ClusterReads, ns: str, src: Mapping[str, Any]) -> dict[str, bytes]:
    data = reads.configmap(ns, src["name"])
    if data is None:
        if src.get("optional"):
            return {}
        raise VolumeError(f'configmap "{src["name"]}" not found')
    return _select(
        {k: v.encode() for k, v in data.items()},
        src.get("items"),
        f'configmap "{src["name"]}"',
        bool(src.get("optional")),
    )


def _secret_files(reads: ClusterReads, ns: str, src: Mapping[str, Any]) -> dict[str, bytes]:
    name = src.get("secretName") or src.get("name") or ""
    data = reads.secret(ns, name)
    if data is None:
        if src.get("optional"):
            return {}
        raise VolumeError(f'secret "{name}" not found')
    decoded = {k: base64.b64decode(v) for k, v in data.items()}
    return _select(decoded, src.get("items"), f'secret "{name}"', bool(src.get("optional")))


def _downward_files(
    pod: Mapping[str, Any], items: list[dict[str, Any]], pod_ip: str | None, host_ip: str
) -> dict[str, bytes]:
    out = {}
    for item in items:
        if "fieldRef" not in item:
            continue
        path = item["fieldRef"]["fieldPath"]
        meta = pod.get("metadata", {})
        if path in ("metadata.labels", "metadata.annotations"):
            kv = meta.get(path.split(".")[1]) or {}
            out[item["path"]] = "\n".join(f'{k}="{v}"' for k, v in sorted(kv.items())).encode()
        else:
            try:
                out[item["path"]] = field_value(path, pod, pod_ip, host_ip).encode()
            except EnvError as e:
                raise VolumeError(str(e)) from e
    return out


def prepare_volumes(
    pod: Mapping[str, Any], pod_dir: Path, reads: ClusterReads, pod_ip: str | None, host_ip: str
) -> dict[str, Path]:
    """Creates every volume of the pod; returns volume name -> host path."""
    ns = pod["metadata"]["namespace"]
    paths: dict[str, Path] = {}
    for vol in pod.get("spec", {}).get("volumes") or []:
        name = vol["name"]
        local = pod_dir / "volumes" / name
        if "emptyDir" in vol:
            local.mkdir(parents=True, exist_ok=True)
        elif "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]["claimName"]
            bound = reads.claim_path(ns, claim)
            if bound is None:
                raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
            bound.mkdir(parents=True, exist_ok=True)
            local = bound
        elif "hostPath" in vol:
            local = Path(vol["hostPath"]["path"])
            if vol["hostPath"].get("type") in ("DirectoryOrCreate",):
                local.mkdir(parents=True, exist_ok=True)
        elif "configMap" in vol:
            _refresh(local, _configmap_files(reads, ns, vol["configMap"]), vol["configMap"].get("defaultMode", 0o644))
        elif "secret" in vol:
            _refresh(local, _secret_files(reads, ns, vol["secret"]), vol["secret"].get("defaultMode", 0o644))
        elif "downwardAPI" in vol:
            files = _downward_files(pod, vol["downwardAPI"].get("items") or [], pod_ip, host_ip)
            _refresh(local, files, vol["downwardAPI"].get("defaultMode", 0o644))
        elif "projected" in vol:
            projected: dict[str, bytes] = {}
            for src in vol["projected"].get("sources") or []:
                if "serviceAccountToken" in src:
                    sat = src["serviceAccountToken"]
                    token = reads.service_account_token(pod, sat.get("audience"), sat.get("expirationSeconds", 3607))
                    projected[sat["path"]] = token.encode()
                elif "configMap" in src:
                    if src["configMap"].get("name") == "kube-root-ca.crt":
                        # Published by the controller manager, but only eventually: the CA is known, use it.
                        projected.update(
                            _select(
                                {"ca.crt": reads.root_ca().encode()},
                                src["configMap"].get("items"),
                                "kube-root-ca.crt",
                                True,
                            )
                        )
                    else:
                        projected.update(_configmap_files(reads, ns, src["configMap"]))
                elif "secret" in src:
                    projected.update(_secret_files(reads, ns, src["secret"]))
                elif "downwardAPI" in src:
                    projected.update(_downward_files(pod, src["downwardAPI"].get("items") or [], pod_ip, host_ip))
            _refresh(local, projected, vol["projected"].get("defaultMode", 0o644))
        else:
            raise VolumeError(f"volume {name!r}: this volume type is not supported by the local executor")
        paths[name] = local
    return paths


def _refresh(local: Path, files: Mapping[str, bytes], mode: int) -> None:
    if local.exists():
        shutil.rmtree(local)
    _write_files(local, files, mode)


def container_mounts(
    container: Mapping[str, Any], volumes: Mapping[str, Path], termination_log: Path
) -> list[dict[str, Any]]:
    """Bind mounts (source, target, read_only) of one container, its termination-message file last."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        source = volumes.get(vm["name"])
        if source is None:
            raise VolumeError(f"volumeMount {vm['name']!r} names no volume of the pod")
        if vm.get("subPath"):
            source = source / vm["subPath"]
            if not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        mounts.append({"source": str(source), "target": vm["mountPath"], "read_only": bool(vm.get("readOnly"))})
    termination_log.parent.mkdir(parents=True, exist_ok=True)
    termination_log.write_bytes(b"")
    mounts.append(
        {
            "source": str(termination_log),
            "target": container.get("terminationMessagePath") or "/dev/termination-log",
            "read_only": False,
        }
    )
    return mounts
