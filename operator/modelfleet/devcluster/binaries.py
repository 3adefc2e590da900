"""Finding the control plane's binaries: prebuilt ones (MODELFLEET_BIN_DIR, or KUBEBUILDER_ASSETS as with envtest),
or the versioned cache that hack/k8s-binaries.sh builds from Go modules."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REQUIRED = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "k8s-binaries.sh"


class SetupError(Exception):
    """Set-up cannot continue; the message names the step and where to look."""


def _check(directory: Path, origin: str) -> Path:
    missing = [b for b in REQUIRED if not os.access(directory / b, os.X_OK)]
    if not (directory / "kwok-stages").is_dir():
        missing.append("kwok-stages/ (KWOK's stage files)")
    if missing:
        raise SetupError(f"{origin}={directory} lacks {', '.join(missing)}")
    return directory


def find_binaries() -> Path:
    for var in ("MODELFLEET_BIN_DIR", "KUBEBUILDER_ASSETS"):
        if os.environ.get(var):
            return _check(Path(os.environ[var]), var)
    if not BUILD_SCRIPT.exists():
        raise SetupError(
            "no Kubernetes binaries: set MODELFLEET_BIN_DIR (or KUBEBUILDER_ASSETS) to a directory with "
            f"{', '.join(REQUIRED)}, or run from a checkout that has hack/k8s-binaries.sh"
        )
    # The script prints progress on stderr (shown to the user) and the directory on its last stdout line.
    res = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        raise SetupError(
            "building the Kubernetes binaries failed (hack/k8s-binaries.sh); the step and its log file are named above"
        )
    return _check(Path(res.stdout.strip().splitlines()[-1]), "hack/k8s-binaries.sh output")
