"""Kueue for the dev cluster and the tests: the real controller (sigs.k8s.io/kueue, built from its Go module by
hack/kueue.sh), started on demand as a dev-cluster process, so TrainingJobs' Jobs are admitted by Kueue's own quota
accounting.

Kueue always starts its webhook server and, with its internal certificate management off (there is no Service to
reach it through here), reads a serving certificate from `webhook.certDir` and from the path its main hard-codes for
the metrics server (/etc/kueue/metrics/certs). Both get a certificate for 127.0.0.1 issued by the dev cluster's CA.
No webhook is registered with the API server: ModelFleet creates its Jobs suspended and labelled with their queue, so
admission needs none. Kueue's visibility API server (an extra listener) is off."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from modelfleet.devcluster.binaries import REPO_ROOT, SetupError

BUILD_SCRIPT = REPO_ROOT / "hack" / "kueue.sh"
NAMESPACE = "kueue-system"
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")  # hard-coded in Kueue's main without internal cert management


def find_kueue() -> Path:
    """The directory with `kueue` and its `crds/` (built on first use; MODELFLEET_KUEUE_DIR: prebuilt)."""
    res = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        raise SetupError("building Kueue failed (hack/kueue.sh); the step and its log file are named above")
    return Path(res.stdout.strip().splitlines()[-1])


def configuration(*, webhook_port: int, health_port: int, metrics_port: int, cert_dir: Path) -> dict[str, Any]:
    """Kueue's Configuration for one process on loopback: batch/v1 Jobs only, no leader election."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
        "featureGates": {"VisibilityOnDemand": False},
    }


def command(binary: Path, config_file: Path, kubeconfig: Path) -> tuple[list[str], dict[str, str]]:
    return [str(binary), f"--config={config_file}", "--zap-log-level=2"], {"KUBECONFIG": str(kubeconfig)}


def write_configuration(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1))  # YAML is a superset of JSON
    return path
