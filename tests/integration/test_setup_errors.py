"""Set-up failures stop with one clear message naming the step and the log, and start nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from modelfleet.devcluster.binaries import BUILD_SCRIPT


def test_missing_go_toolchain_is_named(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MODELFLEET_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert "step 'find Go toolchain'" in res.stderr and "'go' is not on PATH" in res.stderr


def test_failed_module_download_names_the_step_and_log(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MODELFLEET_CACHE_DIR": str(tmp_path / "cache"),
        "MODELFLEET_K8S_VERSIONS": "v1.37.2",
        "GOPROXY": "off",
        "GOFLAGS": "-mod=mod",
        "GOMODCACHE": str(tmp_path / "gomod"),
    }
    env.pop("KUBEBUILDER_ASSETS", None)
    res = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert "step 'download k8s.io/kubernetes@v1.37.2' failed" in res.stderr
    assert "k8s-download.log" in res.stderr
    assert not list((tmp_path / "cache").glob("k8s/*/bin/kube-apiserver"))


def test_up_with_incomplete_prebuilt_binaries_fails_before_starting_anything(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    env = {**os.environ, "MODELFLEET_BIN_DIR": str(tmp_path / "bin")}
    res = subprocess.run(
        [sys.executable, "-m", "modelfleet", "dev-cluster", "up", f"--state-dir={tmp_path / 's'}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert res.returncode == 1
    assert f"MODELFLEET_BIN_DIR={tmp_path / 'bin'} lacks etcd, kube-apiserver" in res.stderr
    assert not (tmp_path / "s" / "pids").exists() or not list((tmp_path / "s" / "pids").iterdir())
