"""The trainer and the model server on a real S3 store (versitygw): an s3:// dataset in, an s3:// artifact out with
its manifest last, served after verification; every refusal is a one-line error naming the object."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modelfleet.artifact.objectstore import GCS_ENDPOINT_ENV, MANIFEST, S3Uri
from modelfleet.devcluster.processes import free_port
from modelfleet.devcluster.s3 import S3Server
from tests.datasets import write
from tests.runtime.test_server import Server, rows, v2_inputs
from tests.runtime.test_trainer import run_trainer, spec


@pytest.fixture(scope="module")
def trained(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A model trained from an s3:// dataset into an s3:// artifact, by the trainer process as a Job runs it."""
    tmp = tmp_path_factory.mktemp("s3-trained")
    s3_server.make_bucket("runtime-models")
    local = write("breast_cancer", tmp / "bc.csv")
    store = s3_server.store()
    store.put_file(S3Uri("runtime-models", "data/bc.csv"), local)
    training = spec("breast_cancer", local, "sklearn", "sklearn.linear_model.LogisticRegression", max_iter=500)
    training["dataset"]["uri"] = "s3://runtime-models/data/bc.csv"
    uri = "s3://runtime-models/models/bc/v1"
    code, result, err = run_trainer(tmp, training, "scratch", output_uri=uri, env=s3_server.env())
    assert code == 0, err
    return {
        "uri": uri,
        "digest": result["artifactDigest"],
        "dataset": result["datasetDigest"],
        "local_sha": hashlib.sha256(local.read_bytes()).hexdigest(),
        "csv": str(local),
    }


def test_the_trainer_reads_an_s3_dataset_and_writes_the_artifact_manifest_last(
    s3_server: S3Server, trained: dict[str, str]
) -> None:
    assert trained["dataset"] == f"sha256:{trained['local_sha']}"  # the bytes read from the bucket
    store = s3_server.store()
    keys = store.list(S3Uri.parse(trained["uri"]))
    assert f"models/bc/v1/{MANIFEST}" in keys and any(k.endswith("/model.skops") for k in keys)
    manifest = store.read_manifest(S3Uri.parse(trained["uri"]))
    assert manifest["digest"] == trained["digest"]


def test_the_server_fetches_verifies_and_serves_an_s3_artifact(s3_server: S3Server, trained: dict[str, str]) -> None:
    server = Server(trained["uri"], "--expected-digest", trained["digest"], env=s3_server.env()).wait_ready()
    try:
        status, body = server.post("/v2/models/m/infer", v2_inputs(rows("breast_cancer", Path(trained["csv"]), 3)))
        assert status == 200, body
        assert len(body["outputs"][0]["data"]) == 3
    finally:
        assert server.stop() == 0


def failed_start(server: Server) -> str:
    assert server.proc.wait(timeout=60) == 2
    return server.proc.stdout.read() if server.proc.stdout else ""


def test_a_tampered_or_missing_or_oversized_artifact_is_refused_before_loading(
    s3_server: S3Server, trained: dict[str, str], tmp_path: Path
) -> None:
    store = s3_server.store()
    # A copy of the artifact in another prefix, so the module's artifact stays intact.
    copy = "s3://runtime-models/models/bc-copy/v1"
    store.download_artifact(trained["uri"], tmp_path / "a")
    store.upload_artifact(tmp_path / "a", copy)
    env = s3_server.env()

    out = failed_start(Server(copy, "--expected-digest", trained["digest"], "--max-artifact-bytes", "1000", env=env))
    assert "bytes are more than the 1000 allowed" in out and "bc-copy/v1" in out

    model_key = next(k for k in store.list(S3Uri.parse(copy)) if k.endswith("/model.skops"))
    store.put_bytes(S3Uri("runtime-models", model_key), b"not the model that was trained")
    out = failed_start(Server(copy, "--expected-digest", trained["digest"], env=env))
    assert "artifact unavailable, nothing loaded" in out and "model.skops: contents (sha256" in out

    out = failed_start(Server("s3://runtime-models/models/never/v1", env=env))
    assert "s3://runtime-models/models/never/v1/manifest.json does not exist" in out


def test_refused_credentials_fail_a_run_at_once_naming_the_bucket_and_no_key(
    s3_server: S3Server, trained: dict[str, str], tmp_path: Path
) -> None:
    training = spec("breast_cancer", Path(trained["csv"]), "sklearn", "sklearn.linear_model.LogisticRegression")
    env = {**s3_server.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    code, message, _ = run_trainer(tmp_path, training, "out", output_uri="s3://runtime-models/models/x/v1", env=env)
    assert code == 2
    assert message["reason"] == "ArtifactUnavailable"
    assert "access to bucket 'runtime-models'" in message["error"] and "was refused" in message["error"]
    assert "not-the-secret" not in json.dumps(message) and s3_server.access_key not in json.dumps(message)

    code, message, _ = run_trainer(
        tmp_path, training, "out2", output_uri="s3://no-such-bucket-here/x/v1", env=s3_server.env()
    )
    assert (code, message["reason"]) == (2, "ArtifactUnavailable")
    assert "bucket 'no-such-bucket-here' does not exist" in message["error"]

    # An endpoint that does not answer may come back: exit 1, which the Job's backoffLimit retries.
    closed = {**s3_server.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    code, message, _ = run_trainer(tmp_path, training, "out3", output_uri="s3://runtime-models/x/v1", env=closed)
    assert (code, message["reason"]) == (1, "ArtifactUnavailable")
    assert "cannot reach the S3 endpoint http://127.0.0.1:" in message["error"]


def test_gs_locations_take_the_same_path_to_googles_s3_api_and_never_to_the_s3_endpoint(
    s3_server: S3Server, trained: dict[str, str], tmp_path: Path
) -> None:
    """gs:// dataset in, gs:// artifact out (manifest last), served after verification: the same code as s3://, sent
    to the gs:// endpoint and signed for region "auto" as Google's XML API wants. A second S3 server stands in for
    Google (MODELFLEET_GCS_ENDPOINT, checking signatures for "auto"); AWS_ENDPOINT_URL names the first, which holds
    none of these buckets, so a request sent there would fail."""
    google = S3Server(tmp_path / "google", region="auto").start()
    try:
        google.make_bucket("gcs-models")
        google.store().put_file(S3Uri("gcs-models", "data/bc.csv"), Path(trained["csv"]))
        env = {**s3_server.env(), GCS_ENDPOINT_ENV: google.endpoint}
        env.update(AWS_ACCESS_KEY_ID=google.access_key, AWS_SECRET_ACCESS_KEY=google.secret_key)  # HMAC keys
        training = spec("breast_cancer", Path(trained["csv"]), "sklearn", "sklearn.linear_model.LogisticRegression")
        training["dataset"]["uri"] = "gs://gcs-models/data/bc.csv"
        uri = "gs://gcs-models/models/bc/v1"
        code, result, err = run_trainer(tmp_path, training, "scratch", output_uri=uri, env=env)
        assert code == 0, err
        assert result["datasetDigest"] == f"sha256:{trained['local_sha']}" and result["artifactUri"] == uri
        store = google.store()
        assert store.read_manifest(S3Uri("gcs-models", "models/bc/v1"))["digest"] == result["artifactDigest"]
        server = Server(uri, "--expected-digest", result["artifactDigest"], env=env).wait_ready()
        try:
            batch = v2_inputs(rows("breast_cancer", Path(trained["csv"]), 3))
            status, body = server.post("/v2/models/m/infer", batch)
            assert status == 200, body
        finally:
            assert server.stop() == 0
        # A tampered object is refused before loading, naming the gs:// object.
        key = next(k for k in store.list(S3Uri("gcs-models", "models/bc/v1")) if k.endswith("model.skops"))
        store.put_bytes(S3Uri("gcs-models", key), b"swapped")
        out = failed_start(Server(uri, "--expected-digest", result["artifactDigest"], env=env))
        assert f"gs://gcs-models/{key}" in out and "differ from the manifest" in out
    finally:
        google.stop()
