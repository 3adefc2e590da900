"""The Kubernetes client, created once per process."""

from __future__ import annotations

import os

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from modelfleet.api.v1alpha1 import GROUP, VERSION

OUR_PLURALS = ("mlmodels", "trainingjobs", "driftpolicies")


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, the kubeconfig ($KUBECONFIG or `kubeconfig`) otherwise."""
    cfg = client.Configuration()
    if kubeconfig is None:
        kubeconfig = os.environ.get("KUBECONFIG")
    try:
        config.load_incluster_config(client_configuration=cfg)
    except ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    return client.ApiClient(cfg)


def missing_crds(
    api: client.ApiClient, group: str = GROUP, version: str = VERSION, plurals: tuple[str, ...] = OUR_PLURALS
) -> list[str]:
    """CRD names (plural.group) the API server does not serve. Uses discovery, which every user may read, so the
    check needs no permission on CustomResourceDefinitions."""
    try:
        resources = client.CustomObjectsApi(api).get_api_resources(group, version)
    except ApiException as e:
        if e.status == 404:
            return [f"{p}.{group}" for p in plurals]
        raise
    served = {r.name for r in resources.resources}
    return [f"{p}.{group}" for p in plurals if p not in served]
