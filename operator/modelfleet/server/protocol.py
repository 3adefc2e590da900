"""Requests and responses: KServe's Open Inference Protocol v2 (REST) and a plain {"instances": [...]} form.
Everything a client can get wrong becomes a BadRequest with a message that names the problem."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelfleet.server.model import ServedModel

NUMERIC_TYPES = {
    "FP16": np.float32,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int64,
    "INT16": np.int64,
    "INT32": np.int64,
    "INT64": np.int64,
    "UINT8": np.int64,
    "UINT16": np.int64,
    "UINT32": np.int64,
    "UINT64": np.int64,
    "BOOL": np.float64,
}
MAX_ROWS = 10_000


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _numeric(values: Any, what: str, dtype: Any = np.float64) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"{what}: expected numbers ({e})", 422) from e
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise BadRequest(f"{what}: NaN and infinite values are not allowed", 422)
    return arr.astype(np.float64, copy=False)


def _rows(n: int) -> int:
    if n == 0:
        raise BadRequest("the request has no rows", 422)
    if n > MAX_ROWS:
        raise BadRequest(f"the request has {n} rows; at most {MAX_ROWS} per request", 413)
    return n


def parse_v2(body: Any, model: ServedModel) -> dict[str, np.ndarray]:
    """Either one input per feature (shape [n] or [n, 1], BYTES for categorical ones), or a single numeric input of
    shape [n, features] holding the features in declared order (row-major)."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise BadRequest('the body must be a JSON object with a non-empty "inputs" list')
    inputs = body["inputs"]
    kinds = dict(model.features)
    for i, inp in enumerate(inputs):
        if not isinstance(inp, dict) or not all(k in inp for k in ("name", "shape", "datatype", "data")):
            raise BadRequest(f"inputs[{i}] needs name, shape, datatype and data")
        if not isinstance(inp["shape"], list) or not all(isinstance(d, int) and d >= 0 for d in inp["shape"]):
            raise BadRequest(f"inputs[{i}].shape must be a list of non-negative integers")
        if not isinstance(inp["data"], list | np.ndarray):  # an array: decoded from gRPC contents
            raise BadRequest(f"inputs[{i}].data must be a list (row-major)")
    if len(inputs) == 1 and inputs[0]["name"] not in kinds and len(inputs[0]["shape"]) == 2:
        inp = inputs[0]
        shape = inp["shape"]
        if len(shape) != 2 or shape[1] != len(model.features):
            raise BadRequest(
                f"input {inp['name']!r}: a single tensor input must have shape [rows, "
                f"{len(model.features)}], got {shape}",
                422,
            )
        if any(k != "numeric" for _, k in model.features):
            raise BadRequest("this model has categorical features: send one input per feature", 422)
        if inp["datatype"] not in NUMERIC_TYPES:
            raise BadRequest(f"input {inp['name']!r}: datatype {inp['datatype']} is not numeric", 422)
        matrix = _numeric(inp["data"], f"input {inp['name']!r}")
        rows = _rows(shape[0])
        if matrix.size != rows * shape[1]:
            raise BadRequest(f"input {inp['name']!r}: {matrix.size} values do not fill shape {shape}", 422)
        matrix = matrix.reshape(rows, shape[1])
        return {name: matrix[:, j] for j, name in enumerate(model.feature_names)}
    columns: dict[str, np.ndarray] = {}
    n_rows: int | None = None
    for inp in inputs:
        name = inp["name"]
        if name not in kinds:
            raise BadRequest(f"unknown input {name!r}; this model's inputs are {', '.join(model.feature_names)}", 422)
        if name in columns:
            raise BadRequest(f"input {name!r} appears twice", 422)
        shape = inp["shape"]
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise BadRequest(f"input {name!r}: shape must be [rows] or [rows, 1], got {shape}", 422)
        rows = shape[0]
        if len(inp["data"]) != rows:
            raise BadRequest(f"input {name!r}: {len(inp['data'])} values do not match shape {shape}", 422)
        if n_rows is not None and rows != n_rows:
            raise BadRequest(f"input {name!r} has {rows} rows, other inputs have {n_rows}", 422)
        n_rows = _rows(rows)
        if kinds[name] == "categorical":
            if inp["datatype"] != "BYTES":
                raise BadRequest(f"input {name!r} is categorical: datatype must be BYTES", 422)
            columns[name] = np.asarray([str(v) for v in inp["data"]], dtype=object)
        else:
            if inp["datatype"] not in NUMERIC_TYPES:
                raise BadRequest(f"input {name!r} is numeric: datatype {inp['datatype']} is not", 422)
            columns[name] = _numeric(inp["data"], f"input {name!r}")
    missing = [n for n in model.feature_names if n not in columns]
    if missing:
        raise BadRequest(f"missing input(s) {', '.join(missing)}", 422)
    return columns


def parse_instances(body: Any, model: ServedModel) -> dict[str, np.ndarray]:
    """{"instances": [{feature: value, ...}, ...]}."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise BadRequest('the body must be a JSON object with an "instances" list')
    instances = body["instances"]
    _rows(len(instances))
    names = model.feature_names
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            raise BadRequest(f"instances[{i}] must be an object of feature values", 422)
        unknown = [k for k in row if k not in names]
        if unknown:
            raise BadRequest(f"instances[{i}]: unknown feature(s) {', '.join(map(str, unknown))}", 422)
        missing = [n for n in names if n not in row]
        if missing:
            raise BadRequest(f"instances[{i}]: missing feature(s) {', '.join(missing)}", 422)
    columns = {}
    for name, kind in model.features:
        values = [row[name] for row in instances]
        if kind == "categorical":
            columns[name] = np.asarray([str(v) for v in values], dtype=object)
        else:
            if any(isinstance(v, (str, bool)) or v is None for v in values):
                raise BadRequest(f"feature {name!r} is numeric: got a non-number", 422)
            columns[name] = _numeric(values, f"feature {name!r}")
    return columns


def _tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    data: list[Any]
    if values.dtype.kind in "iub":
        datatype, data = "INT64", values.astype(np.int64).ravel().tolist()
    elif values.dtype.kind == "f":
        datatype, data = "FP64", values.astype(np.float64).ravel().tolist()
    else:
        datatype, data = "BYTES", [str(v) for v in values.ravel()]
    return {"name": name, "shape": list(values.shape), "datatype": datatype, "data": data}


def v2_response(
    model: ServedModel, pred: np.ndarray, proba: np.ndarray | None, request_id: str | None
) -> dict[str, Any]:
    outputs = [_tensor("predict", np.asarray(pred))]
    if proba is not None:
        outputs.append(_tensor("predict_proba", np.asarray(proba, dtype=np.float64)))
    out: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": outputs}
    if request_id:
        out["id"] = request_id
    return out


def instances_response(pred: np.ndarray, proba: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {"predictions": np.asarray(pred).tolist()}
    if proba is not None:
        out["probabilities"] = np.asarray(proba, dtype=np.float64).tolist()
    return out


def metadata(model: ServedModel) -> dict[str, Any]:
    inputs = [
        {"name": n, "datatype": "BYTES" if k == "categorical" else "FP64", "shape": [-1]} for n, k in model.features
    ]
    outputs = [
        {
            "name": "predict",
            "datatype": "BYTES"
            if model.classes and isinstance(model.classes[0], str)
            else ("INT64" if model.classes else "FP64"),
            "shape": [-1],
        }
    ]
    if model.classes:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.classes)]})
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": f"modelfleet-{model.framework}",
        "inputs": inputs,
        "outputs": outputs,
    }
