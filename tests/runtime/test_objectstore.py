"""Artifacts in a real S3 server (versitygw): the manifest written last, verification while reading, and each way an
object store fails naming the object."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from modelfleet.artifact.objectstore import (
    GCS_ENDPOINT_ENV,
    MANIFEST,
    ObjectStore,
    S3Settings,
    S3Uri,
    StoreError,
    is_object_uri,
)
from modelfleet.devcluster.processes import free_port
from modelfleet.devcluster.s3 import S3Server
from modelfleet.trainer.output import write_artifact


def artifact(tmp_path: Path, body: bytes = b"weights" * 100) -> tuple[Path, str]:
    def fill(d: Path) -> None:
        (d / "model.safetensors").write_bytes(body)
        (d / "metadata.json").write_text(json.dumps({"framework": "sklearn", "task": "classification"}))
        (d / "sub").mkdir()
        (d / "sub" / "profile.json").write_text("{}")

    final = tmp_path / "local" / "v1"
    return final, write_artifact(final, fill)


def uploaded(s3_server: S3Server, bucket: str, tmp_path: Path) -> tuple[ObjectStore, str, str]:
    """(store, uri, digest) of an artifact uploaded to s3://<bucket>/m/v1."""
    local, digest = artifact(tmp_path)
    store = s3_server.store()
    uri = f"s3://{bucket}/m/v1"
    store.upload_artifact(local, uri)
    return store, uri, digest


def test_an_uploaded_artifact_is_listed_through_the_s3_api_and_comes_back_verified(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    local, digest = artifact(tmp_path)
    store = s3_server.store()
    uri = f"s3://{bucket}/models/fraud/v1"
    assert store.upload_artifact(local, uri) == digest
    keys = store.list(S3Uri.parse(uri))
    assert f"models/fraud/v1/{MANIFEST}" in keys
    uploaded = [k for k in keys if not k.endswith(MANIFEST)]
    assert {k.split("/", 4)[4] for k in uploaded} == {
        "model.safetensors",
        "metadata.json",
        "sub/profile.json",
        "digest",
    }
    assert store.artifact_exists(uri)
    assert not store.artifact_exists(f"s3://{bucket}/models/fraud/v2")
    assert not store.artifact_exists("s3://no-such-bucket-here/models/fraud/v1")

    dest = tmp_path / "served"
    assert store.download_artifact(uri, dest, expected_digest=digest) == digest
    assert (dest / "model.safetensors").read_bytes() == (local / "model.safetensors").read_bytes()
    assert (dest / "sub" / "profile.json").is_file()


def test_a_rewritten_artifact_replaces_the_old_upload_whole(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    store = s3_server.store()
    uri = f"s3://{bucket}/m/v1"
    first, _ = artifact(tmp_path / "a", b"one")
    second, digest = artifact(tmp_path / "b", b"two")
    store.upload_artifact(first, uri)
    store.upload_artifact(second, uri)
    uploads = {k.split("/")[2] for k in store.list(S3Uri.parse(uri)) if not k.endswith(MANIFEST)}
    assert len(uploads) == 1, uploads
    assert store.download_artifact(uri, tmp_path / "out") == digest
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == b"two"


def test_a_tampered_object_is_refused_while_it_is_read_and_nothing_is_left(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    store, uri, digest = uploaded(s3_server, bucket, tmp_path)
    weights = next(k for k in store.list(S3Uri.parse(uri)) if k.endswith("model.safetensors"))
    store.put_bytes(S3Uri(bucket, weights), b"someone else's weights")
    dest = tmp_path / "served"
    with pytest.raises(StoreError, match=r"model\.safetensors: contents \(sha256 [0-9a-f]+\) differ") as e:
        store.download_artifact(uri, dest, expected_digest=digest)
    assert e.value.permanent
    assert not dest.exists()


def test_a_manifest_naming_another_digest_or_a_path_outside_is_refused(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    store, uri, digest = uploaded(s3_server, bucket, tmp_path)
    with pytest.raises(StoreError, match=f"differs from the expected sha256:{'0' * 64}"):
        store.download_artifact(uri, tmp_path / "a", expected_digest=f"sha256:{'0' * 64}")
    manifest = json.loads(store.client.get_object(bucket, f"m/v1/{MANIFEST}").read())
    manifest["files"][0]["path"] = "../../etc/cron.d/x"
    store.put_bytes(S3Uri(bucket, f"m/v1/{MANIFEST}"), json.dumps(manifest).encode())
    with pytest.raises(StoreError, match=r"names a path '\.\./\.\./etc/cron\.d/x' outside the artifact"):
        store.download_artifact(uri, tmp_path / "b", expected_digest=digest)
    store.put_bytes(S3Uri(bucket, f"m/v1/{MANIFEST}"), b"{not json")
    with pytest.raises(StoreError, match=f"s3://{bucket}/m/v1/manifest.json is not a valid artifact manifest"):
        store.download_artifact(uri, tmp_path / "c")


def test_a_half_uploaded_artifact_is_no_artifact(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    """Files without the manifest (the uploader died before its last write) are never read."""
    local, _ = artifact(tmp_path)
    store = s3_server.store()
    store.put_file(S3Uri(bucket, "m/v1/.upload-abc/model.safetensors"), local / "model.safetensors")
    assert not store.artifact_exists(f"s3://{bucket}/m/v1")
    with pytest.raises(StoreError, match=rf"s3://{bucket}/m/v1/manifest.json does not exist: no complete artifact"):
        store.download_artifact(f"s3://{bucket}/m/v1", tmp_path / "out")


def test_an_artifact_or_object_over_the_limit_is_refused_before_it_is_fetched(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    local, _ = artifact(tmp_path, b"x" * 10_000)
    store = s3_server.store()
    store.upload_artifact(local, f"s3://{bucket}/m/v1")
    with pytest.raises(StoreError, match=r"the artifact's \d+ bytes are more than the 4096 allowed"):
        store.download_artifact(f"s3://{bucket}/m/v1", tmp_path / "out", max_bytes=4096)
    with pytest.raises(StoreError, match=r"10000 bytes is more than the 100 allowed"):
        key = next(k for k in store.list(S3Uri(bucket, "m/v1")) if k.endswith("model.safetensors"))
        store.download(S3Uri(bucket, key), tmp_path / "one", max_bytes=100)


def test_each_store_failure_names_the_bucket_or_endpoint_and_never_a_key(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    local, _ = artifact(tmp_path)
    wrong = ObjectStore(S3Settings(endpoint=s3_server.endpoint, access_key=s3_server.access_key, secret_key="wrong"))
    with pytest.raises(StoreError, match=rf"access to bucket '{bucket}' at {s3_server.endpoint} was refused") as e:
        wrong.upload_artifact(local, f"s3://{bucket}/m/v1")
    assert e.value.permanent and "wrong" not in str(e.value) and s3_server.access_key not in str(e.value)

    with pytest.raises(StoreError, match="bucket 'no-such-bucket-here' does not exist") as e:
        s3_server.store().upload_artifact(local, "s3://no-such-bucket-here/m/v1")
    assert e.value.permanent

    # A port nobody listens on: reported in seconds, as something that may pass.
    closed = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", closed)) != 0
    started = time.monotonic()
    with pytest.raises(StoreError, match=rf"cannot reach the S3 endpoint http://127.0.0.1:{closed}") as e:
        ObjectStore(S3Settings(endpoint=f"http://127.0.0.1:{closed}")).artifact_exists(f"s3://{bucket}/m/v1")
    assert not e.value.permanent
    assert time.monotonic() - started < 30


def test_settings_come_from_the_aws_variables_and_never_print_a_key() -> None:
    settings = S3Settings.from_env(
        {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_ENDPOINT_URL": "http://gw:7070"}
    )
    assert (settings.endpoint, settings.access_key, settings.region) == ("http://gw:7070", "AKIAEXAMPLE", "us-east-1")
    assert "s3cr3t" not in repr(settings) and "AKIAEXAMPLE" not in repr(settings)
    assert S3Settings.from_env({}).endpoint == "https://s3.amazonaws.com"
    with pytest.raises(StoreError, match="not an http"):
        ObjectStore(S3Settings(endpoint="ftp://x"))


def test_gs_locations_go_to_googles_s3_api_with_the_same_keys_never_to_an_s3_endpoint() -> None:
    env = {"AWS_ACCESS_KEY_ID": "GOOGHMAC", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_ENDPOINT_URL": "http://minio:9000"}
    gs = S3Settings.from_env(env, endpoint="http://operator-s3:9000", scheme="gs")
    assert (gs.endpoint, gs.access_key, gs.region) == ("https://storage.googleapis.com", "GOOGHMAC", "auto")
    assert (
        S3Settings.from_env({**env, GCS_ENDPOINT_ENV: "http://proxy:8080"}, scheme="gs").endpoint == "http://proxy:8080"
    )
    assert str(S3Uri.parse("gs://models/fraud/v3").child(MANIFEST)) == "gs://models/fraud/v3/manifest.json"
    assert [is_object_uri(u) for u in ("gs://b/k", "s3://b/k", "pvc://c/p", "file:///x")] == [True, True, False, False]
