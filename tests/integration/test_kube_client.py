"""The operator's Kubernetes client against the real API server: lists filtered by the CRDs' selectable fields, and
the fallback for a server that refuses a field selector."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfleet.artifact.objectstore import GCS_ENDPOINT_ENV, S3Uri
from modelfleet.clients.kube import Kube as ApiKube
from modelfleet.clients.kube import api_client
from modelfleet.devcluster.processes import free_port
from modelfleet.devcluster.s3 import S3Server
from modelfleet.trainer.output import write_artifact
from tests.samples import sample
from tests.support import Kube


def _policies(kube: Kube, namespace: str) -> None:
    for name, model, url in (("a", "churn", "http://p1:9090"), ("b", "fraud", "http://p1:9090"), ("c", "churn", "")):
        policy = sample("DriftPolicy")
        policy["metadata"] = {"name": name}
        policy["spec"]["modelRef"] = {"name": model}
        if url:
            policy["spec"]["prometheus"] = {"url": url}
        else:
            policy["spec"].pop("prometheus")
        kube.apply(policy, namespace)


def test_a_models_policies_are_selected_by_the_api_server(
    kube: Kube, crds: Path, kubeconfig: Path, namespace: str
) -> None:
    _policies(kube, namespace)
    client = ApiKube(api_client(str(kubeconfig)))
    # The server itself answers the field selector (the CRD declares the field), so a pass reads only its policies.
    raw = client.custom.list_namespaced_custom_object(
        "modelfleet.io", "v1alpha1", namespace, "driftpolicies", field_selector="spec.modelRef.name=churn"
    )
    assert sorted(p["metadata"]["name"] for p in raw["items"]) == ["a", "c"]
    got = client.list_custom(namespace, "driftpolicies", fields={"spec.modelRef.name": "churn"})
    assert sorted(p["metadata"]["name"] for p in got) == ["a", "c"]
    assert not client._unselectable
    assert client.list_custom(namespace, "driftpolicies", fields={"spec.modelRef.name": "nobody"}) == []


def test_a_refused_field_selector_is_filtered_by_the_client(
    kube: Kube, crds: Path, kubeconfig: Path, namespace: str
) -> None:
    _policies(kube, namespace)
    client = ApiKube(api_client(str(kubeconfig)))
    fields = {"spec.prometheus.url": "http://p1:9090"}  # not a selectable field: the server answers 400
    for _ in range(2):  # the second time without asking the server to select
        got = client.list_custom(namespace, "driftpolicies", fields=fields)
        assert sorted(p["metadata"]["name"] for p in got) == ["a", "b"]
        assert client._unselectable == {("driftpolicies", ("spec.prometheus.url",))}
    # Other fields of the same kind are still asked of the server.
    got = client.list_custom(namespace, "driftpolicies", fields={"spec.modelRef.name": "fraud"})
    assert [p["metadata"]["name"] for p in got] == ["b"]
    assert len(client._unselectable) == 1


def test_events_and_metadata_patches_hand_their_connection_back(
    kube: Kube, crds: Path, kubeconfig: Path, namespace: str
) -> None:
    """Answers no one reads are drained: a run of writes goes over the connections already open (an unread answer kept
    its connection, so every Event opened a new TLS connection)."""
    _policies(kube, namespace)
    api = api_client(str(kubeconfig))
    client = ApiKube(api)
    policy = client.custom.get_namespaced_custom_object("modelfleet.io", "v1alpha1", namespace, "driftpolicies", "a")
    client.list_custom(namespace, "driftpolicies")  # one connection is open now
    pools = api.rest_client.pool_manager.pools

    def opened() -> int:  # connections ever opened, over every pool
        return sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118 (it has no iterator)

    before = opened()
    for i in range(10):
        client.post_event(policy, "Normal", "Tested", f"event {i}")
        client.patch_metadata("driftpolicies", namespace, "a", {"annotations": {"tested": str(i)}})
    assert opened() == before
    assert len(kube.items("events", namespace, field_selector="reason=Tested")) == 10


def test_a_gs_artifact_is_found_by_one_head_on_googles_api_and_missed_once_deleted(
    kubeconfig: Path, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache-hit presence check for gs:// goes to the gs:// endpoint (a versitygw signing for region "auto" stands
    in for Google's XML API), never to the operator's S3 endpoint, which answers nothing here."""
    google = S3Server(tmp_path / "google", region="auto").start()
    try:
        google.make_bucket("gcs-models")
        monkeypatch.setenv(GCS_ENDPOINT_ENV, google.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", google.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", google.secret_key)
        client = ApiKube(api_client(str(kubeconfig)), s3_endpoint=f"http://127.0.0.1:{free_port()}")
        uri = "gs://gcs-models/fleet/m/v1"
        assert client.artifact_exists(namespace, uri) is False
        directory = tmp_path / "artifact"
        write_artifact(directory, lambda d: (d / "model.bin").write_bytes(b"weights"))
        google.store().upload_artifact(directory, uri)
        assert client.artifact_exists(namespace, uri) is True
        google.store().remove_prefix(S3Uri.parse(uri))
        assert client.artifact_exists(namespace, uri) is False
    finally:
        google.stop()
