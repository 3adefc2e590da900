"""The operator's Kubernetes client against the real API server: lists filtered by the CRDs' selectable fields, and
the fallback for a server that refuses a field selector."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

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


def test_counting_reads_a_table_without_objects_and_agrees_with_the_metadata_list(
    kube: Kube, crds: Path, kubeconfig: Path, namespace: str
) -> None:
    """The membership check counts with Tables (`includeObject=None`); the counts must be the ones the metadata
    lists give, in one namespace and in all, with a label selector, across pages (the start's count of Jobs with our
    label, leaving others out, is tested below)."""
    _policies(kube, namespace)
    client = ApiKube(api_client(str(kubeconfig)))
    listed = len(client.list_metadata("driftpolicies", namespace)[0])
    assert client.count("driftpolicies", namespace, page=2) == 3 == listed
    everywhere = len(client.list_metadata("driftpolicies")[0])
    assert client.count("driftpolicies", page=1) == everywhere >= 3
    assert client.count("mlmodels", namespace) == 0
    selector = "app.kubernetes.io/managed-by=modelfleet-operator"
    pods = len(client.list_metadata("pods", selector=selector)[0])
    assert client.count("pods", selector=selector) == pods
    assert client.count("jobs", namespace, selector=selector) == 0
    with pytest.raises(ApiException) as refused:
        client.count("driftpolicies", namespace, selector="not a selector!")
    assert refused.value.status == 400


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


def test_the_start_counts_again_a_kind_whose_objects_were_deleted_before_the_watch_listed_them(
    kube: Kube,
    crds: Path,
    kubeconfig: Path,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Against the real API server: two of our Jobs are counted at start, one is deleted before the cache sees it;
    the Jobs are counted again (with our selector, in the watched namespace) and the first pass is not held back."""
    import asyncio
    import logging

    from modelfleet.config import OperatorConfig
    from modelfleet.controller import controller as core
    from modelfleet.vocabulary import MANAGED_BY

    for name in ("kept", "deleted"):
        kube.apply(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name, "labels": dict(MANAGED_BY)},
                "spec": {
                    "suspend": True,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
                },
            },
            namespace,
        )
    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "not-ours"},
            "spec": {
                "suspend": True,
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
            },
        },
        namespace,
    )
    monkeypatch.setattr(core, "RECOUNT_SECONDS", 0.2)
    monkeypatch.setattr(core, "SYNC_TIMEOUT_SECONDS", 20.0)

    async def start() -> tuple[dict[str, int], bool]:
        c = core.Controller(
            config=OperatorConfig(namespaces=(namespace,)),
            kube=ApiKube(api_client(str(kubeconfig))),
            kinds={},
            prometheus_for=lambda ns: None,
            clock=None,  # type: ignore[arg-type]
        )
        counted = c.count_existing()
        c._expected = counted
        kube.run("delete", "job", "deleted", "-n", namespace, "--wait=true")
        kept = kube.get("job", "kept", namespace)
        assert kept is not None
        c.observe("Job", None, kept)  # what the watch lists after the deletion
        await c._sync_deadline()
        return counted, c.synced.is_set()

    with caplog.at_level(logging.INFO, logger="modelfleet.controller.controller"):
        counted, synced = asyncio.run(start())
    assert counted["Job"] == 2, "the Job without our label is not counted"
    assert synced and "did not reach the listed counts" not in caplog.text
    assert "counted again" in caplog.text and "'Job': (1, 1)" in caplog.text
