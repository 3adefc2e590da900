"""Kubeconfig files for the local control plane, one per client identity."""

from __future__ import annotations

from pathlib import Path

import yaml

from modelfleet.devcluster.pki import Pki


def write_kubeconfig(path: Path, server: str, pki: Pki, who: str, context: str = "modelfleet-dev") -> Path:
    """Writes a kubeconfig for `who` (a CLIENT_IDENTITIES key) with absolute paths to the certificates."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)}}],
        "users": [
            {
                "name": who,
                "user": {"client-certificate": str(pki.client_cert(who)), "client-key": str(pki.client_key(who))},
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": who}}],
        "current-context": context,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
