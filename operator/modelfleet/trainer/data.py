"""Reading the dataset: where it is, what it holds, and its digest."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.api.v1alpha1.shared import Dataset
from modelfleet.artifact.digest import file_sha256
from modelfleet.artifact.objectstore import ObjectStore, S3Uri, StoreError
from modelfleet.trainer.errors import ArtifactStoreError, TrainerError

PVC_ROOT_ENV = "MODELFLEET_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
DOWNLOAD_TIMEOUT = 60
MAX_DATASET_BYTES = 64 << 30  # a dataset beyond this is refused before it fills the pod's disk


# A number written as text: what a CSV reader would have typed as a number had the column held nothing else.
NUMBER_TEXT = r"^\s*[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?\s*$"
MAX_FEATURES = 512
FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass
class LoadedData:
    columns: dict[str, np.ndarray]
    target: np.ndarray
    sha256: str
    rows: int
    features: list[tuple[str, str]]
    """(name, numeric|categorical) in training order."""
    inferred: bool = False
    """True when the features were read from the data (dataset.features omitted)."""


def _is_numeric(t: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
        or pa.types.is_null(t)
    )


def _is_text(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t))


def infer_features(table: Any, target: str) -> list[tuple[str, str]]:
    """Every column but the target, in the data's order: numbers (and booleans) numeric, text categorical. A column
    that is neither (dates, lists, bytes), a text column where some values are numbers and others are not, or a
    name a feature cannot have fails the run naming the column and how to declare it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    declare = "list the columns to train on in dataset.features"
    out: list[tuple[str, str]] = []
    for name in table.column_names:
        if name == target:
            continue
        col = table.column(name)
        if not FEATURE_NAME.match(name) or len(name) > 128:
            raise TrainerError(
                f"column {name!r} cannot be a feature name (letters, digits, '_', '.', '-', starting with a letter "
                f"or '_'; at most 128): rename it in the data, or {declare} without it"
            )
        if _is_numeric(col.type):
            out.append((name, "numeric"))
        elif _is_text(col.type):
            text = col.cast(pa.string())
            present = pc.filter(text, pc.invert(pc.equal(pc.utf8_trim_whitespace(text), "")))
            numbers = int(pc.sum(pc.match_substring_regex(present, NUMBER_TEXT)).as_py() or 0)
            if 0 < numbers < len(present):
                mask = pc.invert(pc.match_substring_regex(present, NUMBER_TEXT))
                word = pc.filter(present, mask)[0].as_py()
                number = pc.filter(present, pc.invert(mask))[0].as_py()
                raise TrainerError(
                    f"column {name!r} mixes numbers ({number!r}) and text ({word!r}), so its type is ambiguous: "
                    f"{declare} with {{name: {name}, type: categorical}} to use it as text, or clean the data"
                )
            out.append((name, "categorical"))
        else:
            raise TrainerError(
                f"column {name!r} holds {col.type}, which is neither a number nor text: {declare} without it, or "
                "convert it in the data"
            )
    if not out:
        raise TrainerError(f"dataset has no columns besides the target {target!r}")
    if len(out) > MAX_FEATURES:
        raise TrainerError(f"dataset has {len(out)} columns besides the target (at most {MAX_FEATURES}): {declare}")
    return out


def pvc_path(uri: str) -> Path:
    """pvc://<claim>/<path> -> where the Job mounts that claim (MODELFLEET_PVC_ROOT/<claim>/<path>)."""
    rest = uri[len("pvc://") :]
    claim, _, path = rest.partition("/")
    return Path(os.environ.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT)) / claim / path


def local_copy(uri: str, workdir: Path) -> Path:
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme == "file":
        return Path(urllib.parse.urlparse(uri).path)
    if scheme == "pvc":
        return pvc_path(uri)
    target = workdir / "dataset"
    if scheme == "https":
        try:
            with urllib.request.urlopen(uri, timeout=DOWNLOAD_TIMEOUT) as resp, target.open("wb") as out:
                shutil.copyfileobj(resp, out)
        except OSError as e:
            raise TrainerError(f"cannot download dataset {uri}: {e}") from e
        return target
    # gs:// with HMAC keys goes through Google's S3-compatible API, as gs:// artifacts do; without keys, through
    # gcsfs and the pod's own Google identity (workload identity), where that driver is installed.
    if scheme == "s3" or (scheme == "gs" and os.environ.get("AWS_ACCESS_KEY_ID")):
        try:
            return ObjectStore.for_uri(uri).download(S3Uri.parse(uri), target, MAX_DATASET_BYTES)
        except StoreError as e:
            raise ArtifactStoreError(f"cannot read dataset {uri}: {e}", permanent=e.permanent) from e
    if scheme == "gs":
        try:
            import fsspec
        except ImportError as e:
            raise TrainerError(
                f"dataset {uri}: gs:// needs fsspec and gcsfs in the trainer image "
                "(pip install 'modelfleet[trainer-cloud]')"
            ) from e
        try:
            with fsspec.open(uri, "rb") as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
        except ImportError as e:  # fsspec is there, its gs driver (gcsfs) is not
            raise TrainerError(f"dataset {uri}: gs:// needs fsspec and gcsfs in the trainer image ({e})") from e
        except Exception as e:  # fsspec drivers raise their own error types
            raise TrainerError(f"cannot read dataset {uri}: {e}") from e
        return target
    raise TrainerError(f"dataset uri scheme {scheme!r} is not supported")


def load(dataset: Dataset) -> LoadedData:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="modelfleet-data-") as tmp:
        path = local_copy(dataset.uri, Path(tmp))
        if not path.is_file():
            raise TrainerError(f"dataset {dataset.uri} not found (looked at {path})")
        digest = f"sha256:{file_sha256(path)}"
        try:
            table = pacsv.read_csv(path) if dataset.format == "csv" else pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TrainerError(f"dataset {dataset.uri} is not valid {dataset.format}: {first}") from e
    names = set(table.column_names)
    if dataset.target not in names:
        raise TrainerError(
            f"dataset has no target column {dataset.target!r} (columns: {', '.join(sorted(names)[:20])})"
        )
    features: list[tuple[str, str]] = (
        [(f.name, str(f.type)) for f in dataset.features]
        if dataset.features is not None
        else infer_features(table, dataset.target)
    )
    missing = [name for name, _ in features if name not in names]
    if missing:
        raise TrainerError(f"dataset has no column(s) {', '.join(missing)} declared in dataset.features")
    if table.num_rows == 0:
        raise TrainerError("dataset has no rows")
    columns: dict[str, np.ndarray] = {}
    for name, kind in features:
        col = table.column(name)
        if kind == "numeric":
            if not _is_numeric(col.type):
                raise TrainerError(f"feature {name!r} is declared numeric but the column holds {col.type}")
            columns[name] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        else:
            columns[name] = np.asarray(col.cast(pa.string()).to_pylist(), dtype=object)
    target = table.column(dataset.target)
    if target.null_count:
        raise TrainerError(f"target column {dataset.target!r} has {target.null_count} empty value(s)")
    return LoadedData(
        columns, target.to_numpy(zero_copy_only=False), digest, table.num_rows, features, dataset.features is None
    )
