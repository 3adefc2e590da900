"""`modelfleet operator run`: checks the CRDs exist, then runs the Kopf operator."""

from __future__ import annotations

import logging
import sys

import kopf

from modelfleet.clients.kube import Kube, api_client, missing_crds
from modelfleet.config import OperatorConfig
from modelfleet.deps import Deps


def run(*, namespaces: tuple[str, ...], metrics_port: int, health_port: int, json_logs: bool, verbose: bool) -> int:
    config = OperatorConfig.from_env()
    if namespaces:
        config = OperatorConfig(**{**config.__dict__, "namespaces": namespaces})
    api = api_client()
    missing = missing_crds(api)
    if missing:
        print(
            f"modelfleet operator: the CustomResourceDefinition(s) {', '.join(missing)} are not installed. "
            "Install them first (kubectl apply --server-side -f crds/, or the Helm chart); the operator never "
            "installs CRDs or RBAC itself.",
            file=sys.stderr,
        )
        return 2
    import modelfleet.handlers  # noqa: F401  (registers the handlers)
    from modelfleet import __version__
    from modelfleet.metrics import OPERATOR_INFO

    OPERATOR_INFO.labels(__version__).set(1)

    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    memo = kopf.Memo(deps=Deps(config=config, api=api, kube=Kube(api)), metrics_port=metrics_port)
    # The liveness endpoint is served by Kopf itself and answers while the event loop runs: it does not depend on
    # the API server, so an API outage does not get the operator restarted.
    kopf.run(
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
        memo=memo,
    )
    return 0
