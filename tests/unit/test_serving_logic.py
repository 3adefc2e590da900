"""Pure serving rules: the serving objects, which version is served, rollout completion and failure."""

from __future__ import annotations

from typing import Any

from modelfleet.api.v1alpha1 import MLModel
from modelfleet.api.v1alpha1.mlmodel import TrainedVersion
from modelfleet.builders.serving import DESIRED_HASH, desired_serving
from modelfleet.config import OperatorConfig
from modelfleet.reconcilers.common import parse
from modelfleet.reconcilers.serving import choose_version, rollout_complete, rollout_failure
from tests.samples import sample

CFG = OperatorConfig()


def model(**serving: Any) -> MLModel:
    doc = sample("MLModel", "fraud-detector")
    doc["metadata"].update(namespace="ml", uid="m-1")
    doc["spec"]["serving"] = {**doc["spec"]["serving"], **serving}
    return parse(MLModel, doc)


def version(n: int, promotable: bool = True) -> TrainedVersion:
    return TrainedVersion(
        number=n,
        training_job=f"m-v{n}",
        artifact_uri=f"pvc://store/m/v{n}",
        artifact_digest=f"sha256:{n}",
        promotable=promotable,
    )


def objects(m: MLModel, v: TrainedVersion) -> dict[str, dict[str, Any]]:
    return {
        o["kind"]: o
        for o in desired_serving(name="fraud", namespace="ml", uid="m-1", spec=m.spec, version=v, config=CFG)
    }


def test_deployment_rolls_out_safely_and_probes_the_v2_health_endpoints() -> None:
    dep = objects(model(minReplicas=1, maxReplicas=1), version(3))["Deployment"]
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["lifecycle"]["preStop"] == {"sleep": {"seconds": 3}}
    assert pod["metadata"]["labels"]["modelfleet.io/version"] == "3"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert "--expected-digest" in c["args"] and "sha256:3" in c["args"]
    assert c["args"][c["args"].index("--artifact") + 1] == "/mnt/pvc/store/m/v3"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False and pod["spec"]["securityContext"]["runAsNonRoot"]
    assert dep["spec"]["replicas"] == 1 and dep["metadata"]["ownerReferences"][0]["kind"] == "MLModel"


def test_an_s3_version_is_fetched_by_the_server_and_mounts_nothing() -> None:
    v = version(3).model_copy(update={"artifact_uri": "s3://models/fraud/v3"})
    config = OperatorConfig(s3_secret_name="modelfleet-s3")
    dep = {
        o["kind"]: o
        for o in desired_serving(name="fraud", namespace="ml", uid="m-1", spec=model().spec, version=v, config=config)
    }["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    c = pod["containers"][0]
    assert c["args"][c["args"].index("--artifact") + 1] == "s3://models/fraud/v3"
    assert c["envFrom"] == [{"secretRef": {"name": "modelfleet-s3"}}]
    assert "envFrom" not in objects(model(), version(3))["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def test_hpa_above_min_replicas_and_pdb_from_two_replicas() -> None:
    assert set(objects(model(minReplicas=1, maxReplicas=1), version(1))) == {"Deployment", "Service"}
    scaled = objects(model(minReplicas=2, maxReplicas=5), version(1))
    assert set(scaled) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert "replicas" not in scaled["Deployment"]["spec"]  # the HPA owns it
    assert scaled["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 2


def test_the_hash_changes_with_what_is_served_only() -> None:
    m = model()
    a, b = objects(m, version(1)), objects(m, version(1))
    assert (
        a["Deployment"]["metadata"]["annotations"][DESIRED_HASH]
        == b["Deployment"]["metadata"]["annotations"][DESIRED_HASH]
    )
    assert (
        objects(m, version(2))["Deployment"]["metadata"]["annotations"][DESIRED_HASH]
        != a["Deployment"]["metadata"]["annotations"][DESIRED_HASH]
    )


def test_newest_promotable_version_or_exactly_the_approved_one() -> None:
    versions = [version(1), version(2), version(3, promotable=False)]
    assert choose_version(model().spec, versions).number == 2  # type: ignore[union-attr]
    high = model()
    high.spec.risk_class = "high"
    assert choose_version(high.spec, versions) is None
    high.spec.serving.approved_version = 1
    assert choose_version(high.spec, versions).number == 1  # type: ignore[union-attr]


def deployment(version_label: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"modelfleet.io/version": version_label}}}},
        "status": {"observedGeneration": 2, **status},
    }


def test_rollout_completes_only_when_the_new_version_is_available() -> None:
    assert not rollout_complete(deployment("2", updatedReplicas=1, availableReplicas=1, replicas=2), 2)  # old pod left
    assert not rollout_complete(deployment("1", updatedReplicas=1, availableReplicas=1, replicas=1), 2)
    assert rollout_complete(deployment("2", updatedReplicas=1, availableReplicas=1, replicas=1), 2)


def test_a_crashing_new_version_is_a_failed_rollout_with_the_servers_reason() -> None:
    crashing = {
        "metadata": {"name": "p", "labels": {"modelfleet.io/version": "2"}},
        "spec": {},
        "status": {
            "containerStatuses": [
                {
                    "name": "server",
                    "restartCount": 2,
                    "lastState": {
                        "terminated": {
                            "exitCode": 2,
                            "message": "modelfleet-server: error: artifact rejected before loading: digest",
                        }
                    },
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                }
            ]
        },
    }
    assert "rejected before loading" in (rollout_failure(None, [crashing], 2) or "")
    assert rollout_failure(None, [crashing], 1) is None  # another version's pods are not this rollout's
    stuck = deployment("2")
    stuck["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet has timed out progressing.",
        }
    ]
    assert rollout_failure(stuck, [], 2) == "ReplicaSet has timed out progressing."


def test_ensembles_are_served_with_micro_batching_and_linear_models_without() -> None:
    forest = model()  # the sample trains a RandomForestClassifier
    args = objects(forest, version(1))["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-batch-size") + 1] == "32"
    linear = model()
    linear.spec.training.estimator = "sklearn.linear_model.LogisticRegression"
    args = objects(linear, version(1))["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--max-batch-size" not in args


def pod_spec(m: MLModel) -> dict[str, Any]:
    return dict(objects(m, version(1))["Deployment"]["spec"]["template"]["spec"])


def test_serving_placement_fields_reach_the_pods() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
            }
        }
    }
    m = model(
        nodeSelector={"pool": "inference"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        affinity=affinity,
        priorityClassName="serving-high",
    )
    spec = pod_spec(m)
    assert spec["nodeSelector"] == {"pool": "inference"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    assert spec["affinity"] == affinity and spec["priorityClassName"] == "serving-high"
    assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName"} & set(pod_spec(model()))


def test_gpu_serving_tolerates_the_gpu_taint_unless_tolerations_are_given() -> None:
    gpu = pod_spec(model(resources={"gpu": 1}))
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    amd = pod_spec(model(resources={"gpu": 2, "gpuResource": "amd.com/gpu"}))
    assert amd["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "2"
    assert amd["tolerations"] == [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "tolerations" not in pod_spec(model(resources={"gpu": 1}, tolerations=[]))  # given (none): exactly those
    own = pod_spec(model(resources={"gpu": 1}, tolerations=[{"key": "gpu", "operator": "Exists"}]))
    assert own["tolerations"] == [{"key": "gpu", "operator": "Exists"}]


def test_placement_is_part_of_the_served_hash() -> None:
    def digest(m: MLModel) -> str:
        return str(objects(m, version(1))["Deployment"]["metadata"]["annotations"][DESIRED_HASH])

    assert digest(model()) != digest(model(nodeSelector={"pool": "inference"}))


def test_an_empty_affinity_adds_nothing_so_upgrades_do_not_roll_every_model() -> None:
    assert pod_spec(model(affinity={})) == pod_spec(model())
