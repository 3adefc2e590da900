"""A minimal dynamic provisioner for the dev cluster's default StorageClass: one local directory per claim.

The PersistentVolume controller (in kube-controller-manager) marks claims of our StorageClass with the
`volume.kubernetes.io/storage-provisioner` annotation; we create a hostPath PersistentVolume pre-bound to the claim and
the controller binds it. Released volumes (claim deleted) are deleted with their directory (reclaim policy Delete).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

PROVISIONER = "modelfleet.io/local-executor"
STORAGE_CLASS = "modelfleet-local"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
POLL_SECONDS = 1.0


def desired_storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def claim_dir(root: Path, namespace: str, name: str, uid: str) -> Path:
    return root / namespace / f"{name}-{uid[:8]}"


def desired_volume(pvc: dict[str, Any], root: Path) -> dict[str, Any]:
    meta, spec = pvc["metadata"], pvc["spec"]
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.get("storageClassName") or STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "hostPath": {
                "path": str(claim_dir(root, meta["namespace"], meta["name"], meta["uid"])),
                "type": "DirectoryOrCreate",
            },
        },
    }


class Provisioner:
    def __init__(self, core: CoreV1Api, root: Path, log: logging.Logger) -> None:
        self.core, self.root, self.log = core, root, log

    def sync_once(self) -> None:
        pvcs = json.loads(self.core.list_persistent_volume_claim_for_all_namespaces(_preload_content=False).data)
        pvs = json.loads(self.core.list_persistent_volume(_preload_content=False).data)
        existing = {pv["metadata"]["name"] for pv in pvs["items"]}
        for pvc in pvcs["items"]:
            ann = pvc["metadata"].get("annotations") or {}
            ours = PROVISIONER in (
                ann.get("volume.kubernetes.io/storage-provisioner"),
                ann.get("volume.beta.kubernetes.io/storage-provisioner"),
            )
            if (
                ours
                and (pvc.get("status") or {}).get("phase") == "Pending"
                and f"pvc-{pvc['metadata']['uid']}" not in existing
            ):
                pv = desired_volume(pvc, self.root)
                Path(pv["spec"]["hostPath"]["path"]).mkdir(parents=True, exist_ok=True)
                try:
                    self.core.create_persistent_volume(pv)
                except ApiException as e:
                    if e.status != 409:
                        raise
        for pv in pvs["items"]:
            ann = pv["metadata"].get("annotations") or {}
            if ann.get(PROVISIONED_BY) == PROVISIONER and (pv.get("status") or {}).get("phase") == "Released":
                path = Path(pv["spec"]["hostPath"]["path"])
                if path.is_relative_to(self.root):
                    shutil.rmtree(path, ignore_errors=True)
                try:
                    self.core.delete_persistent_volume(pv["metadata"]["name"])
                except ApiException as e:
                    if e.status != 404:
                        raise

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_SECONDS):
            try:
                self.sync_once()
            except Exception as e:  # keep provisioning through API restarts; the next poll retries
                self.log.warning("provisioner sync failed: %s", e)
