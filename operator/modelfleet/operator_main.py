"""`modelfleet operator run`: checks what the operator needs before it starts (configuration, credentials, the API
server, the CRDs, its ports), then runs the Kopf operator.

Every check that fails prints one line naming the problem on stderr and exits with code 2 within seconds, so that
Kubernetes restarts the pod with back-off and `kubectl logs` shows why. Inside Kopf the same failures would be
retried forever by its start-up handling: an operator alive and reconciling nothing."""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from prometheus_client import start_http_server
from urllib3.exceptions import HTTPError

from modelfleet.clients.kube import Kube, api_client, missing_crds, retrying
from modelfleet.config import ConfigError, OperatorConfig
from modelfleet.deps import Deps
from modelfleet.vocabulary import KUEUE_GROUP, KUEUE_VERSION

log = logging.getLogger(__name__)
EXIT_START_FAILED = 2
API_CHECK_TIMEOUT_SECONDS = 10.0


class StartupError(Exception):
    """A reason the operator cannot start; the message is the one line the user sees."""


def _check_port(flag: str, port: int) -> None:
    """Fails fast when a port cannot be bound (Kopf would otherwise retry its start-up forever)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError as e:
            raise StartupError(f"{flag}: port {port} is in use or cannot be bound ({e.strerror})") from e


def _serve_metrics(port: int) -> None:
    try:
        start_http_server(port, addr="0.0.0.0")
    except OSError as e:
        raise StartupError(f"--metrics-port: port {port} is in use or cannot be bound ({e.strerror})") from e


def prepare(
    namespaces: tuple[str, ...], metrics_port: int, health_port: int, overrides: dict[str, Any] | None = None
) -> Deps:
    """Everything the operator needs, checked; raises StartupError naming the first problem."""
    try:
        config = OperatorConfig.from_env()
        changes = {**(overrides or {}), **({"namespaces": namespaces} if namespaces else {})}
        config = config.with_changes(**changes) if changes else config
    except ConfigError as e:
        raise StartupError(str(e)) from e
    try:
        api = api_client(qps=config.api_qps, burst=config.api_burst, timeout=config.api_timeout_seconds)
    except (ConfigException, OSError, ValueError, TypeError) as e:
        raise StartupError(f"cannot load Kubernetes credentials (in-cluster or $KUBECONFIG): {e}") from e
    host = api.configuration.host
    try:
        # A server that answers 5xx or 429 is asked again for a few seconds; one that does not answer fails at once.
        missing = retrying(
            lambda: missing_crds(api, timeout=API_CHECK_TIMEOUT_SECONDS),
            what="the CRD check",
            budget=API_CHECK_TIMEOUT_SECONDS,
            unreachable=False,
        )
    except (HTTPError, OSError) as e:
        why = str(getattr(e, "reason", None) or e)[:300]
        raise StartupError(f"cannot reach the Kubernetes API server at {host}: {why}") from e
    except ApiException as e:
        raise StartupError(f"the Kubernetes API server at {host} answered {e.status} {e.reason}") from e
    if missing:
        raise StartupError(
            f"the CustomResourceDefinition(s) {', '.join(missing)} are not installed. "
            "Install them first (kubectl apply --server-side -f crds/, or the Helm chart); the operator never "
            "installs CRDs or RBAC itself."
        )
    try:  # Kueue is optional: where its Workloads are served, the operator reads them (see handlers/watch.py)
        kueue = not missing_crds(api, KUEUE_GROUP, KUEUE_VERSION, ("workloads",), timeout=API_CHECK_TIMEOUT_SECONDS)
    except (ApiException, HTTPError, OSError) as e:
        log.warning("cannot tell whether Kueue is installed (%s); not watching its Workloads", e)
        kueue = False
    if health_port:
        _check_port("--health-port", health_port)
    if metrics_port:
        _serve_metrics(metrics_port)
    return Deps(config=config, api=api, kube=Kube(api, s3_endpoint=config.s3_endpoint), kueue=kueue)


def run(
    *,
    namespaces: tuple[str, ...],
    metrics_port: int,
    health_port: int,
    json_logs: bool,
    verbose: bool,
    overrides: dict[str, Any] | None = None,
) -> int:
    try:
        deps = prepare(namespaces, metrics_port, health_port, overrides)
    except StartupError as e:
        print(f"modelfleet operator: {e}", file=sys.stderr)
        return EXIT_START_FAILED
    import modelfleet.handlers  # noqa: F401  (registers the handlers)
    from modelfleet.handlers.startup import watch_only_memories
    from modelfleet.handlers.watch import watch_workloads

    if deps.kueue:
        watch_workloads()
    from modelfleet import __version__
    from modelfleet.metrics import OPERATOR_INFO

    OPERATOR_INFO.labels(__version__).set(1)

    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not verbose:  # one "Handler ... succeeded" line per watch event is noise (and CPU) at fleet scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # The liveness endpoint is served by Kopf itself and answers while the event loop runs: it does not depend on
    # the API server, so an API outage does not get the operator restarted.
    memo = kopf.Memo(deps=deps, metrics_port=metrics_port)
    try:
        kopf.run(
            standalone=True,
            clusterwide=not deps.config.namespaces,
            namespaces=list(deps.config.namespaces),
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
            memo=memo,
            memories=watch_only_memories(),
        )
    except Exception:
        if not memo.get("start_failed"):
            raise
        # A start-up handler failed for good (handlers/startup.py): its reason once, as for the checks above.
        print(f"modelfleet operator: {memo['start_failed']}", file=sys.stderr)
        return EXIT_START_FAILED
    return 0
