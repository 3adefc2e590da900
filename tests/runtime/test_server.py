"""The model server as a real process over real HTTP, serving artifacts the trainer produced."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfleet.artifact.sklearn_model import SklearnPredictor
from modelfleet.artifact.torch_model import TorchPredictor
from modelfleet.devcluster.processes import free_port
from tests.datasets import feature_spec, write
from tests.runtime.test_trainer import run_trainer, spec


class Server:
    def __init__(self, artifact: Path | str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelfleet.server",
                "--artifact",
                str(artifact),
                "--model-name",
                "m",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--grpc-port",
                str(self.grpc_port),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: a failing test can still take every worker down
            env={**os.environ, **(env or {})},
        )

    def wait_ready(self) -> Server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read() if self.proc.stdout else ""
            try:
                if self.get("/v2/health/ready")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not become ready")

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.url + path, data=body, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read()) if "json" in resp.headers[
                    "Content-Type"
                ] else resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post(self, path: str, payload: Any) -> tuple[int, Any]:
        return self.request("POST", path, payload if isinstance(payload, bytes) else json.dumps(payload).encode())

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # leave nothing running, then fail the test
            raise


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("artifacts")
    bc, db = write("breast_cancer", tmp / "bc.csv"), write("diabetes", tmp / "db.csv")
    jobs = {
        "sklearn": spec("breast_cancer", bc, "sklearn", "sklearn.linear_model.LogisticRegression", max_iter=500),
        "torch": spec("diabetes", db, "pytorch", "mlp", epochs=5),
    }
    for name, training in jobs.items():
        code, _, err = run_trainer(tmp, training, name)
        assert code == 0, err
    return {"sklearn": tmp / "sklearn", "torch": tmp / "torch", "bc": bc, "db": db}


@pytest.fixture(scope="module")
def sklearn_server(artifacts: dict[str, Path]) -> Iterator[Server]:
    server = Server(artifacts["sklearn"], "--max-body-bytes", "200000").wait_ready()
    yield server
    server.stop()


def rows(kind: str, path: Path, n: int) -> dict[str, np.ndarray]:
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(path)
    out = {}
    for f in feature_spec(kind):
        col = table.column(f["name"]).to_pylist()[:n]
        out[f["name"]] = np.asarray(col, dtype=object if f["type"] == "categorical" else np.float64)
    return out


def v2_inputs(cols: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": k, "shape": [len(v)], "datatype": "BYTES" if v.dtype == object else "FP64", "data": v.tolist()}
            for k, v in cols.items()
        ]
    }


def test_health_and_metadata(sklearn_server: Server) -> None:
    assert sklearn_server.get("/v2/health/live") == (200, {"live": True})
    assert sklearn_server.get("/v2/models/m/ready")[0] == 200
    status, meta = sklearn_server.get("/v2/models/m")
    assert status == 200 and meta["name"] == "m" and meta["platform"] == "modelfleet-sklearn"
    assert [i["name"] for i in meta["inputs"]] == [f["name"] for f in feature_spec("breast_cancer")]
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64", "BYTES"}
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]


def test_v2_infer_and_predict_equal_the_models_own_predictions(
    sklearn_server: Server, artifacts: dict[str, Path]
) -> None:
    cols = rows("breast_cancer", artifacts["bc"], 25)
    local = SklearnPredictor.load(artifacts["sklearn"], [(f["name"], f["type"]) for f in feature_spec("breast_cancer")])
    pred, proba = local.predict(cols)
    status, out = sklearn_server.post("/v2/models/m/infer", {**v2_inputs(cols), "id": "req-1"})
    assert status == 200 and out["model_name"] == "m" and out["id"] == "req-1"
    by_name = {o["name"]: o for o in out["outputs"]}
    assert by_name["predict"]["data"] == pred.tolist() and by_name["predict"]["datatype"] == "INT64"
    assert by_name["predict_proba"]["shape"] == [25, 2]
    np.testing.assert_allclose(np.asarray(by_name["predict_proba"]["data"]).reshape(25, 2), proba, rtol=1e-12)
    instances = [{k: (v[i] if v.dtype == object else float(v[i])) for k, v in cols.items()} for i in range(25)]
    status, out = sklearn_server.post("/predict", {"instances": instances})
    assert status == 200 and out["predictions"] == pred.tolist()
    np.testing.assert_allclose(out["probabilities"], proba, rtol=1e-12)


def test_pytorch_model_takes_a_single_row_major_tensor(artifacts: dict[str, Path]) -> None:
    server = Server(artifacts["torch"]).wait_ready()
    try:
        cols = rows("diabetes", artifacts["db"], 7)
        names = [f["name"] for f in feature_spec("diabetes")]
        matrix = np.column_stack([cols[n] for n in names])
        status, out = server.post(
            "/v2/models/m/infer",
            {
                "inputs": [
                    {"name": "input-0", "shape": [7, len(names)], "datatype": "FP32", "data": matrix.ravel().tolist()}
                ]
            },
        )
        assert status == 200, out
        expected, _ = TorchPredictor.load(artifacts["torch"]).predict(cols)
        np.testing.assert_allclose(out["outputs"][0]["data"], expected, rtol=1e-5)
    finally:
        assert server.stop() == 0  # SIGTERM: a clean, drained exit


BAD = [
    ("malformed JSON", b"{not json", 400, "malformed JSON"),
    ("no inputs", {"rows": []}, 400, '"inputs"'),
    (
        "unknown input",
        {"inputs": [{"name": "colour", "shape": [1], "datatype": "FP64", "data": [1]}]},
        422,
        "unknown input 'colour'",
    ),
    (
        "wrong shape",
        {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        422,
        "shape [rows, 31]",
    ),
    (
        "data does not fill the shape",
        {"inputs": [{"name": "mean_radius", "shape": [2], "datatype": "FP64", "data": [1.0]}]},
        422,
        "do not match shape",
    ),
    (
        "wrong datatype",
        {"inputs": [{"name": "mean_radius", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
        422,
        "datatype BYTES is not",
    ),
    (
        "numbers that are not",
        {"inputs": [{"name": "mean_radius", "shape": [1], "datatype": "FP64", "data": ["twelve"]}]},
        422,
        "expected numbers",
    ),
    (
        "NaN",
        {"inputs": [{"name": "mean_radius", "shape": [1], "datatype": "FP64", "data": ["nan"]}]},
        422,
        "NaN and infinite values are not allowed",
    ),
    (
        "missing inputs",
        {"inputs": [{"name": "mean_radius", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        422,
        "missing input(s) mean_texture",
    ),
    ("body over the limit", b'{"inputs": [' + b" " * 300_000 + b"]}", 413, "larger than the limit"),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_naming_the_problem(
    sklearn_server: Server, case: str, body: Any, status: int, message: str
) -> None:
    got, out = sklearn_server.post("/v2/models/m/infer", body)
    assert (got, message in out["error"]) == (status, True), out
    assert sklearn_server.get("/v2/health/ready")[0] == 200  # and the server keeps serving


def test_unknown_model_and_bad_instances(sklearn_server: Server) -> None:
    assert sklearn_server.post("/v2/models/other/infer", {"inputs": []})[0] == 404
    status, out = sklearn_server.post("/predict", {"instances": [{"mean_radius": "big"}]})
    assert status == 422 and "unknown feature" not in out["error"] and "missing feature" in out["error"]


def test_metrics_show_the_request_histogram(sklearn_server: Server, artifacts: dict[str, Path]) -> None:
    sklearn_server.post("/v2/models/m/infer", v2_inputs(rows("breast_cancer", artifacts["bc"], 3)))
    status, text = sklearn_server.get("/metrics")
    assert status == 200
    assert 'request_predict_seconds_bucket{le="0.005",model_name="m"}' in text
    assert 'modelfleet_server_requests_total{code="200",model="m"}' in text
    assert "modelfleet_server_model_info{" in text


def test_a_tampered_artifact_is_refused_before_loading(artifacts: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(artifacts["sklearn"], copy)
    raw = bytearray((copy / "model.skops").read_bytes())
    raw[100] ^= 0xFF
    (copy / "model.skops").write_bytes(bytes(raw))
    server = Server(copy)
    assert server.proc.wait(timeout=60) == 2
    assert "rejected before loading" in (server.proc.stdout.read() if server.proc.stdout else "")


class Payload:
    """Unpickling this would create the marker file: proof of code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickle_is_refused_and_never_unpickled(artifacts: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "pickled"
    shutil.copytree(artifacts["sklearn"], copy)
    marker = tmp_path / "code-ran"
    (copy / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    server = Server(copy)
    assert server.proc.wait(timeout=60) == 2
    assert "refusing unsafe model file(s) model.pkl" in (server.proc.stdout.read() if server.proc.stdout else "")
    assert not marker.exists()


def test_an_unexpected_digest_is_refused(artifacts: dict[str, Path]) -> None:
    server = Server(artifacts["sklearn"], "--expected-digest", "sha256:" + "0" * 64)
    assert server.proc.wait(timeout=60) == 2


def test_a_third_party_open_inference_protocol_client_works_unchanged(
    sklearn_server: Server, artifacts: dict[str, Path]
) -> None:
    """NVIDIA Triton's HTTP client speaks the same protocol (KServe v2); it talks to our server as is."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{sklearn_server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("m")
    meta = client.get_model_metadata("m")
    assert meta["name"] == "m" and len(meta["inputs"]) == len(feature_spec("breast_cancer"))
    cols = rows("breast_cancer", artifacts["bc"], 10)
    inputs = []
    for f in feature_spec("breast_cancer"):
        values = cols[f["name"]]
        if f["type"] == "categorical":
            inp = httpclient.InferInput(f["name"], [10], "BYTES")
            inp.set_data_from_numpy(values.astype(object), binary_data=False)
        else:
            inp = httpclient.InferInput(f["name"], [10], "FP64")
            inp.set_data_from_numpy(values.astype(np.float64), binary_data=False)
        inputs.append(inp)
    outputs = [
        httpclient.InferRequestedOutput("predict", binary_data=False),
        httpclient.InferRequestedOutput("predict_proba", binary_data=False),
    ]
    result = client.infer("m", inputs, outputs=outputs)
    local = SklearnPredictor.load(artifacts["sklearn"], [(f["name"], f["type"]) for f in feature_spec("breast_cancer")])
    pred, proba = local.predict(cols)
    assert result.as_numpy("predict").tolist() == pred.tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), proba)


def test_micro_batching_answers_each_request_with_its_own_rows(artifacts: dict[str, Path]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = Server(artifacts["sklearn"], "--max-batch-size", "32", "--max-batch-wait-ms", "5").wait_ready()
    try:
        all_cols = rows("breast_cancer", artifacts["bc"], 60)
        local = SklearnPredictor.load(
            artifacts["sklearn"], [(f["name"], f["type"]) for f in feature_spec("breast_cancer")]
        )
        expected_pred, expected_proba = local.predict(all_cols)

        def one(i: int) -> tuple[int, Any]:
            cols = {k: v[i : i + (i % 3) + 1] for k, v in all_cols.items()}  # 1 to 3 rows each
            return i, server.post("/v2/models/m/infer", v2_inputs(cols))

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(40)))
        for i, (status, out) in answers:
            n = (i % 3) + 1
            assert status == 200
            assert out["outputs"][0]["data"] == expected_pred[i : i + n].tolist()
            np.testing.assert_allclose(
                np.asarray(out["outputs"][1]["data"]).reshape(n, 2), expected_proba[i : i + n], rtol=1e-12
            )
        metrics = server.get("/metrics")[1]
        count = float(
            next(
                ln.split()[-1]
                for ln in metrics.splitlines()
                if ln.startswith('modelfleet_server_batch_rows_count{model="m"}')
            )
        )
        assert count < 40  # 40 requests went through fewer predictions: they were batched
        bad = server.post(
            "/v2/models/m/infer", {"inputs": [{"name": "mean_radius", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
        )
        assert bad[0] == 422  # validation happens before batching; the batcher keeps working
        assert server.post("/v2/models/m/infer", v2_inputs({k: v[:1] for k, v in all_cols.items()}))[0] == 200
    finally:
        assert server.stop() == 0


def drift_gauges(server: Server) -> tuple[float, dict[tuple[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    _, text = server.get("/metrics")
    rows, values = -1.0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "modelfleet_drift_window_rows":
                rows = sample.value
            elif sample.name == "modelfleet_feature_drift":
                values[(sample.labels["feature"], sample.labels["statistic"])] = sample.value
    return rows, values


def test_drift_gauges_follow_the_inputs_and_match_an_offline_computation(
    artifacts: dict[str, Path], tmp_path: Path
) -> None:
    from modelfleet.drift.window import Reference

    server = Server(artifacts["sklearn"], "--drift-window-rows", "400", "--drift-min-rows", "100").wait_ready()
    try:
        cols = rows("breast_cancer", artifacts["bc"], 400)
        first = {k: v[:50] for k, v in cols.items()}
        assert server.post("/v2/models/m/infer", v2_inputs(first))[0] == 200
        window_rows, values = drift_gauges(server)
        assert window_rows == 50 and values == {}  # below --drift-min-rows: no drift values at all
        for start in range(50, 400, 50):
            assert (
                server.post("/v2/models/m/infer", v2_inputs({k: v[start : start + 50] for k, v in cols.items()}))[0]
                == 200
            )
        window_rows, values = drift_gauges(server)
        assert window_rows == 400
        spec_ = feature_spec("breast_cancer")
        features = [f["name"] for f in spec_]
        # Two series per numeric feature, no more; KS needs an order, so the categorical feature has PSI only.
        expected = {(f["name"], s) for f in spec_ for s in ("psi", "ks") if f["type"] == "numeric" or s == "psi"}
        assert set(values) == expected
        # The same rows counted offline against the artifact's profile give the same numbers.
        reference = Reference.from_profile(json.loads((artifacts["sklearn"] / "profile.json").read_text()), features)
        offline = reference.statistics(reference.count(cols), ("psi", "ks"))
        for (feature, statistic), value in values.items():
            assert value == pytest.approx(offline[feature][statistic], abs=1e-9)
        quiet = max(values[(f, "psi")] for f in features)

        # Shift one feature by three standard deviations: its drift jumps, the others stay where they were.
        shifted = dict(cols)
        shifted["mean_radius"] = cols["mean_radius"] + 3 * cols["mean_radius"].std()
        for start in range(0, 400, 50):
            assert (
                server.post("/v2/models/m/infer", v2_inputs({k: v[start : start + 50] for k, v in shifted.items()}))[0]
                == 200
            )
        _, values = drift_gauges(server)
        assert values[("mean_radius", "psi")] > 1.0 and values[("mean_radius", "ks")] > 0.5
        assert max(v for (f, s), v in values.items() if s == "psi" and f != "mean_radius") <= quiet + 1e-9
    finally:
        server.stop()


def test_a_small_reference_raises_no_false_alarm_and_finds_a_one_sd_shift(tmp_path: Path) -> None:
    """The case that cried wolf: wine, 142 training rows and 13 numeric features, served with the default drift
    settings (windows of at least 500 rows, PSI on as many equal-mass bins as the reference allows). Traffic drawn
    from the dataset's rows with 2 % noise: every feature's PSI below 0.1 (the 32-bin grid read 0.08-0.51). Then
    one feature moves by one standard deviation: its PSI is above the default threshold 0.2 and the highest."""
    data = write("wine", tmp_path / "wine.csv")
    training = spec("wine", data, "sklearn", "sklearn.linear_model.LogisticRegression", max_iter=2000)
    code, result, err = run_trainer(tmp_path, training, "wine")
    assert code == 0, err
    assert result["driftReference"] == {"rows": 142, "psiBins": 5}  # the 80 % training split
    server = Server(tmp_path / "wine", "--drift-window-rows", "1000").wait_ready()
    try:
        cols = rows("wine", data, 178)
        rng = np.random.default_rng(7)

        def send(shift: dict[str, float]) -> dict[tuple[str, str], float]:
            for _ in range(10):
                pick = rng.integers(0, 178, 100)
                batch = {k: v[pick] * (1 + rng.normal(0, 0.02, 100)) + shift.get(k, 0.0) for k, v in cols.items()}
                assert server.post("/v2/models/m/infer", v2_inputs(batch))[0] == 200
            window_rows, values = drift_gauges(server)
            assert window_rows == 1000
            return {f: v for (f, s), v in values.items() if s == "psi"}

        quiet = send({})
        assert len(quiet) == 13 and max(quiet.values()) < 0.1, quiet
        moved = "alcohol"
        loud = send({moved: float(cols[moved].std())})
        assert loud[moved] > 0.2 and max(loud, key=loud.__getitem__) == moved, loud
    finally:
        server.stop()


def test_bad_drift_settings_stop_the_server_with_a_clear_error(artifacts: dict[str, Path]) -> None:
    server = Server(artifacts["sklearn"], "--drift-statistics", "psi,chi2")
    assert server.proc.wait(timeout=60) == 2
    assert server.proc.stdout is not None and "unknown drift statistic(s) ['chi2']" in server.proc.stdout.read()


def _pickled_artifact(artifacts: dict[str, Path], tmp_path: Path, payload: bytes) -> tuple[Path, str]:
    """The trainer's artifact with its model as model.joblib instead of skops, re-digested (a pinned pickle)."""
    from modelfleet.artifact.digest import DIGEST_FILE, directory_digest

    copy = tmp_path / "pickled"
    shutil.copytree(artifacts["sklearn"], copy)
    (copy / "model.skops").unlink()
    (copy / "model.joblib").write_bytes(payload)
    digest = directory_digest(copy)
    (copy / DIGEST_FILE).write_text(digest)
    return copy, digest


def test_a_pickle_loads_only_when_allowed_and_pinned(artifacts: dict[str, Path], tmp_path: Path) -> None:
    import io

    import joblib

    features = [(f["name"], f["type"]) for f in feature_spec("breast_cancer")]
    original = SklearnPredictor.load(artifacts["sklearn"], features)
    buffer = io.BytesIO()
    joblib.dump(original.pipeline, buffer)
    copy, digest = _pickled_artifact(artifacts, tmp_path, buffer.getvalue())

    refused = Server(copy, "--expected-digest", digest)  # pinned but not opted in
    assert refused.proc.wait(timeout=60) == 2
    unpinned = Server(copy, "--allow-pickle")  # opted in but not pinned
    assert unpinned.proc.wait(timeout=60) == 2
    assert "--allow-pickle needs --expected-digest" in (unpinned.proc.stdout.read() if unpinned.proc.stdout else "")

    server = Server(copy, "--allow-pickle", "--expected-digest", digest).wait_ready()
    try:
        cols = rows("breast_cancer", artifacts["bc"], 8)
        status, body = server.post("/v2/models/m/infer", v2_inputs(cols))
        assert status == 200
        assert body["outputs"][0]["data"] == original.predict(cols)[0].tolist()
    finally:
        server.stop()


def test_a_pinned_pickle_with_another_digest_never_runs(artifacts: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    copy, _ = _pickled_artifact(artifacts, tmp_path, pickle.dumps(Payload(marker)))
    server = Server(copy, "--allow-pickle", "--expected-digest", "sha256:" + "1" * 64)
    assert server.proc.wait(timeout=60) == 2
    assert "rejected before loading" in (server.proc.stdout.read() if server.proc.stdout else "")
    assert not marker.exists()


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_several_workers_share_the_port_the_metrics_and_the_drift_window(artifacts: dict[str, Path]) -> None:
    import concurrent.futures

    server = Server(artifacts["sklearn"], "--workers", "2", "--drift-min-rows", "50").wait_ready()
    try:
        # The first worker may answer before the second is forked (forking a process holding the model takes ms).
        deadline = time.monotonic() + 10
        while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _children(server.proc.pid)
        assert len(workers) == 2
        cols = rows("breast_cancer", artifacts["bc"], 10)
        body = v2_inputs(cols)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: server.post("/v2/models/m/infer", body)[0], range(40)))
        assert codes == [200] * 40
        time.sleep(0.6)  # each worker publishes its window within a flush period
        # Whichever worker answers the scrape, the numbers are the sum over both.
        for _ in range(6):
            _, text = server.get("/metrics")
            assert 'modelfleet_server_requests_total{code="200",model="m"} 40.0' in text
            assert "modelfleet_server_rows_total" in text
            window_rows, values = drift_gauges(server)
            assert window_rows == 400 and values

        # A worker that dies is replaced; the port keeps answering meanwhile.
        os.kill(workers[0], signal.SIGKILL)
        assert server.post("/v2/models/m/infer", body)[0] == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = _children(server.proc.pid)  # the killed one is listed until the parent reaps it
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.1)
        replaced = _children(server.proc.pid)
        assert len(replaced) == 2 and workers[0] not in replaced
    finally:
        assert server.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)


def test_sigterm_right_after_start_stops_every_worker(artifacts: dict[str, Path]) -> None:
    """A SIGTERM that lands while workers are being forked must reach them all (it once missed the newest one and
    the parent waited for it forever)."""
    for _ in range(4):
        server = Server(artifacts["sklearn"], "--workers", "3").wait_ready()
        assert server.stop() == 0  # within Server.stop's 30 s, every worker drained and gone
