"""The trainer runtime as a real process on real data bundled with scikit-learn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfleet.api.v1alpha1.trainingjob import TrainingJobSpec
from modelfleet.artifact import DigestMismatch, verify_directory
from modelfleet.artifact.sklearn_model import SklearnPredictor
from modelfleet.artifact.torch_model import TorchPredictor
from modelfleet.trainer import data as data_mod
from modelfleet.trainer.evaluate import classification_metrics, regression_metrics
from modelfleet.trainer.output import write_artifact
from modelfleet.trainer.run import split
from tests.datasets import feature_spec, write


def spec(kind: str, path: Path, framework: str, estimator: str, fmt: str = "csv", **hp: Any) -> dict[str, Any]:
    return {
        "framework": framework,
        "task": "classification" if kind in ("breast_cancer", "wine") else "regression",
        "dataset": {"uri": path.as_uri(), "format": fmt, "target": "target", "features": feature_spec(kind)},
        "training": {"estimator": estimator, "hyperparameters": hp},
    }


def run_trainer(
    tmp: Path,
    training: dict[str, Any],
    out: str = "artifact",
    *,
    output_uri: str = "",
    env: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], str]:
    msg = tmp / f"{out}.msg"
    env = {**os.environ, **(env or {}), "MODELFLEET_TRAINING_SPEC": json.dumps(training)}
    uri = ["--output-uri", output_uri] if output_uri else []
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelfleet.trainer",
            "--output-dir",
            str(tmp / out),
            *uri,
            "--termination-log",
            str(msg),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return res.returncode, json.loads(msg.read_text()), res.stderr


def recompute_metrics(training: dict[str, Any], artifact: Path) -> dict[str, float]:
    """Reloads the artifact and evaluates it on the same hold-out rows the trainer used."""
    spec_model = TrainingJobSpec.model_validate(training)
    loaded = data_mod.load(spec_model.dataset)
    _, test = split(loaded.target, spec_model.task, spec_model.training.validation.split, 0)
    cols = {k: v[test] for k, v in loaded.columns.items()}
    meta = json.loads((artifact / "metadata.json").read_text())
    features = [(f["name"], f["type"]) for f in meta["features"]]
    predictor = (
        SklearnPredictor.load(artifact, features) if meta["framework"] == "sklearn" else TorchPredictor.load(artifact)
    )
    pred, proba = predictor.predict(cols)
    if spec_model.task == "classification":
        return classification_metrics(loaded.target[test], pred, proba, meta["classes"])
    return regression_metrics(loaded.target[test].astype(float), np.asarray(pred, dtype=float))


CASES = [
    ("breast_cancer", "csv", "sklearn", "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 30}),
    ("breast_cancer", "parquet", "sklearn", "sklearn.linear_model.LogisticRegression", {"max_iter": 500}),
    ("diabetes", "csv", "sklearn", "sklearn.linear_model.Ridge", {"alpha": 0.5}),
    ("breast_cancer", "parquet", "pytorch", "mlp", {"epochs": 15, "layers": "32,16"}),
    ("diabetes", "parquet", "pytorch", "mlp", {"epochs": 20, "learning_rate": 0.005}),
]


@pytest.mark.parametrize(
    ("kind", "fmt", "framework", "estimator", "hp"), CASES, ids=[f"{c[2]}-{c[0]}-{c[1]}" for c in CASES]
)
def test_trains_and_the_artifact_reproduces_its_metrics(
    tmp_path: Path, kind: str, fmt: str, framework: str, estimator: str, hp: dict[str, Any]
) -> None:
    data = write(kind, tmp_path / f"data.{fmt}", fmt)
    training = spec(kind, data, framework, estimator, fmt, **hp)
    code, result, stderr = run_trainer(tmp_path, training)
    assert code == 0, stderr
    artifact = tmp_path / "artifact"
    assert verify_directory(artifact) == result["artifactDigest"]
    assert result["rows"] == (569 if kind == "breast_cancer" else 442)
    assert result["datasetDigest"].startswith("sha256:") and result["durationSeconds"] > 0
    expected = {"accuracy", "f1", "roc_auc"} if kind == "breast_cancer" else {"rmse", "mae", "r2"}
    assert set(result["metrics"]) == expected
    if kind == "breast_cancer":
        assert result["metrics"]["accuracy"] > 0.85
    recomputed = recompute_metrics(training, artifact)
    for name, value in result["metrics"].items():
        assert recomputed[name] == pytest.approx(value, abs=1e-5)
    meta = json.loads((artifact / "metadata.json").read_text())
    assert meta["dataset"]["sha256"] == result["datasetDigest"] and meta["libraries"]["scikit-learn"]
    assert meta["training"]["hyperparameters"] == hp
    profile = json.loads((artifact / "profile.json").read_text())
    assert set(profile["features"]) == {f["name"] for f in feature_spec(kind)}
    assert all(len(json.dumps(p)) <= 10_000 for p in profile["features"].values())
    assert not list(tmp_path.glob(".artifact.tmp-*"))  # nothing half-written left behind
    assert len(json.dumps(result)) < 4096
    if framework == "pytorch":
        assert "epoch 1/" in stderr  # a progress line per epoch
        assert not (artifact / "model.skops").exists() and (artifact / "model.safetensors").exists()


def test_pytorch_training_is_deterministic(tmp_path: Path) -> None:
    data = write("diabetes", tmp_path / "d.csv")
    training = spec("diabetes", data, "pytorch", "mlp", epochs=5)
    assert run_trainer(tmp_path, training, "a")[0] == 0
    assert run_trainer(tmp_path, training, "b")[0] == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_the_digest_detects_one_changed_byte(tmp_path: Path) -> None:
    data = write("breast_cancer", tmp_path / "d.csv")
    assert (
        run_trainer(
            tmp_path, spec("breast_cancer", data, "sklearn", "sklearn.linear_model.LogisticRegression", max_iter=300)
        )[0]
        == 0
    )
    target = tmp_path / "artifact" / "model.skops"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(DigestMismatch, match="differs from the recorded"):
        verify_directory(tmp_path / "artifact")


def test_a_failed_write_leaves_no_artifact(tmp_path: Path) -> None:
    def fill(d: Path) -> None:
        (d / "model.skops").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_artifact(tmp_path / "v1", fill)
    assert list(tmp_path.iterdir()) == []


def _failure(tmp: Path, training: dict[str, Any]) -> str:
    code, message, stderr = run_trainer(tmp, training)
    assert code == 2, stderr
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("modelfleet-trainer: error:")]
    assert len(lines) == 1
    assert not (tmp / "artifact").exists()
    return str(message["error"])


def test_corrupted_parquet_fails_with_a_reason(tmp_path: Path) -> None:
    data = write("breast_cancer", tmp_path / "d.parquet", "parquet")
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 3])
    reason = _failure(
        tmp_path, spec("breast_cancer", data, "sklearn", "sklearn.linear_model.LogisticRegression", "parquet")
    )
    assert "is not valid parquet" in reason


def test_ragged_csv_fails_with_a_reason(tmp_path: Path) -> None:
    data = write("breast_cancer", tmp_path / "d.csv")
    with data.open("a") as f:
        f.write("1.0,2.0\n")
    reason = _failure(tmp_path, spec("breast_cancer", data, "sklearn", "sklearn.linear_model.LogisticRegression"))
    assert "is not valid csv" in reason


def test_missing_target_column_is_named(tmp_path: Path) -> None:
    data = write("breast_cancer", tmp_path / "d.csv")
    training = spec("breast_cancer", data, "sklearn", "sklearn.linear_model.LogisticRegression")
    training["dataset"]["target"] = "diagnosis"
    assert "no target column 'diagnosis'" in _failure(tmp_path, training)


def test_unknown_hyperparameter_is_named(tmp_path: Path) -> None:
    data = write("breast_cancer", tmp_path / "d.csv")
    reason = _failure(
        tmp_path, spec("breast_cancer", data, "sklearn", "sklearn.ensemble.RandomForestClassifier", n_trees=10)
    )
    assert "unknown hyperparameter(s) for RandomForestClassifier: n_trees" in reason


def test_estimator_outside_the_allow_list_is_refused(tmp_path: Path) -> None:
    data = write("breast_cancer", tmp_path / "d.csv")
    reason = _failure(tmp_path, spec("breast_cancer", data, "sklearn", "sklearn.cluster.KMeans"))
    assert "sklearn.cluster.KMeans is not in the allow-list" in reason


def test_numeric_feature_holding_text_is_named(tmp_path: Path) -> None:
    data = write("breast_cancer", tmp_path / "d.csv")
    training = spec("breast_cancer", data, "sklearn", "sklearn.linear_model.LogisticRegression")
    for f in training["dataset"]["features"]:
        if f["name"] == "size_band":
            f["type"] = "numeric"
    assert "'size_band' is declared numeric but the column holds string" in _failure(tmp_path, training)


def test_reads_a_dataset_over_https(tmp_path: Path) -> None:
    """A real HTTPS server on loopback with a certificate made for the test, trusted through SSL_CERT_FILE."""
    import http.server
    import ssl
    import threading

    from modelfleet.devcluster.pki import ensure_pki

    pki = ensure_pki(tmp_path / "pki")  # its serving certificate is valid for 127.0.0.1
    write("breast_cancer", tmp_path / "www" / "bc.csv")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "www"))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        training = spec(
            "breast_cancer", tmp_path / "unused.csv", "sklearn", "sklearn.linear_model.LogisticRegression", max_iter=300
        )
        training["dataset"]["uri"] = f"https://127.0.0.1:{server.server_address[1]}/bc.csv"
        msg = tmp_path / "msg"
        env = {**os.environ, "MODELFLEET_TRAINING_SPEC": json.dumps(training), "SSL_CERT_FILE": str(pki.ca_cert)}
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelfleet.trainer",
                "--output-dir",
                str(tmp_path / "a"),
                "--termination-log",
                str(msg),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.shutdown()
    assert res.returncode == 0, res.stderr
    assert json.loads(msg.read_text())["rows"] == 569


def test_object_store_without_its_driver_says_what_to_install(tmp_path: Path) -> None:
    training = spec("breast_cancer", tmp_path / "x.csv", "sklearn", "sklearn.linear_model.LogisticRegression")
    training["dataset"]["uri"] = "gs://bucket/data.csv"  # s3:// needs no driver (tests/runtime/test_object_storage.py)
    reason = _failure(tmp_path, training)
    assert "gs:// needs fsspec and gcsfs" in reason


@pytest.mark.parametrize(
    ("kind", "estimator"),
    [
        ("iris", "sklearn.linear_model.LogisticRegression"),
        ("diabetes", "sklearn.linear_model.Ridge"),
        ("iris", "sklearn.ensemble.RandomForestClassifier"),
    ],
)
def test_the_numeric_fast_path_gives_exactly_the_pipelines_answers(tmp_path: Path, kind: str, estimator: str) -> None:
    data = write(kind, tmp_path / "d.csv")
    training = spec(kind, data, "sklearn", estimator)
    training["task"] = "regression" if kind == "diabetes" else "classification"
    assert run_trainer(tmp_path, training)[0] == 0
    features = [(f["name"], f["type"]) for f in feature_spec(kind)]
    predictor = SklearnPredictor.load(tmp_path / "artifact", features)
    assert predictor.fast is not None  # all-numeric: the numpy path is used
    assert predictor.compiled is not None  # and the estimator runs as numpy too (artifact/forest.py, linear.py)
    loaded = data_mod.load(TrainingJobSpec.model_validate(training).dataset)
    from modelfleet.artifact.tabular import as_matrix

    X = as_matrix(loaded.columns, features)
    X[3, 1] = np.nan  # a missing value goes through the imputer's fill
    cols = {name: X[:, j] for j, (name, _) in enumerate(features)}
    pred, proba = predictor.predict(cols)
    if kind == "diabetes":  # the same arithmetic in another order: equal to the last bit or two
        np.testing.assert_allclose(pred, predictor.pipeline.predict(X), rtol=1e-12)
    else:
        np.testing.assert_array_equal(pred, predictor.pipeline.predict(X))
    if proba is not None:
        np.testing.assert_allclose(proba, predictor.pipeline.predict_proba(X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_features_omitted_are_read_from_the_data(tmp_path: Path, fmt: str) -> None:
    """No dataset.features: every column but the target, numbers numeric and text categorical, in the data's order;
    recorded in the result and the artifact, and the artifact reproduces its metrics with them."""
    data = write("breast_cancer", tmp_path / f"d.{fmt}", fmt)
    training = spec("breast_cancer", data, "sklearn", "sklearn.linear_model.LogisticRegression", fmt, max_iter=500)
    del training["dataset"]["features"]
    code, result, stderr = run_trainer(tmp_path, training)
    assert code == 0, stderr
    assert result["features"] == feature_spec("breast_cancer")  # size_band is the one text column
    meta = json.loads((tmp_path / "artifact" / "metadata.json").read_text())
    assert meta["features"] == result["features"] and meta["featuresInferred"] is True
    profile = json.loads((tmp_path / "artifact" / "profile.json").read_text())
    assert set(profile["features"]) == {f["name"] for f in result["features"]}
    recomputed = recompute_metrics(training, tmp_path / "artifact")
    assert recomputed["accuracy"] == pytest.approx(result["metrics"]["accuracy"], abs=1e-6)


def test_declared_features_are_not_repeated_in_the_result(tmp_path: Path) -> None:
    data = write("diabetes", tmp_path / "d.csv")
    code, result, stderr = run_trainer(tmp_path, spec("diabetes", data, "sklearn", "sklearn.linear_model.Ridge"))
    assert code == 0, stderr
    assert "features" not in result
    meta = json.loads((tmp_path / "artifact" / "metadata.json").read_text())
    assert meta["featuresInferred"] is False and meta["features"] == feature_spec("diabetes")


def _inferred_spec(path: Path) -> dict[str, Any]:
    return {
        "framework": "sklearn",
        "task": "regression",
        "dataset": {"uri": path.as_uri(), "format": path.suffix[1:], "target": "y"},
        "training": {"estimator": "sklearn.linear_model.Ridge"},
    }


def test_a_column_mixing_numbers_and_text_is_named_with_how_to_declare_it(tmp_path: Path) -> None:
    rows = ["age,city,y"] + [f"{20 + i},{'paris' if i % 2 else 'oslo'},{i}" for i in range(60)] + ["unknown,oslo,1"]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    reason = _failure(tmp_path, _inferred_spec(tmp_path / "d.csv"))
    assert "column 'age' mixes numbers" in reason and "'unknown'" in reason
    assert "{name: age, type: categorical}" in reason


def test_a_column_that_is_neither_number_nor_text_is_named(tmp_path: Path) -> None:
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    day = datetime.date(2026, 1, 1)
    pq.write_table(
        pa.table({"x": [float(i) for i in range(60)], "seen": [day] * 60, "y": [float(i) for i in range(60)]}),
        tmp_path / "d.parquet",
    )
    reason = _failure(tmp_path, _inferred_spec(tmp_path / "d.parquet"))
    assert "column 'seen' holds date32" in reason and "dataset.features" in reason


def test_a_column_name_a_feature_cannot_have_is_named(tmp_path: Path) -> None:
    rows = ["mean radius,y"] + [f"{i},{i}" for i in range(60)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    assert "column 'mean radius' cannot be a feature name" in _failure(tmp_path, _inferred_spec(tmp_path / "d.csv"))


def test_too_many_inferred_features_for_the_termination_message_still_succeed(tmp_path: Path) -> None:
    """300 columns do not fit the kubelet's 4 KiB termination message: the result leaves the list out (the
    artifact's metadata keeps it) instead of failing the run."""
    rng = np.random.default_rng(0)
    names = [f"sensor_reading_{j:03d}" for j in range(300)]
    X = rng.normal(size=(80, 300))
    rows = [",".join([*names, "y"])] + [",".join(f"{v:.4f}" for v in [*x, x[0] * 2]) for x in X]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    code, result, stderr = run_trainer(tmp_path, _inferred_spec(tmp_path / "d.csv"))
    assert code == 0, stderr
    assert "features" not in result and result["artifactDigest"].startswith("sha256:")
    meta = json.loads((tmp_path / "artifact" / "metadata.json").read_text())
    assert [f["name"] for f in meta["features"]] == names
