"""Reading the dataset: where it is, what it holds, and its digest."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelfleet.api.v1alpha1.shared import Dataset
from modelfleet.artifact.digest import file_sha256
from modelfleet.trainer.errors import TrainerError

PVC_ROOT_ENV = "MODELFLEET_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
DOWNLOAD_TIMEOUT = 60


@dataclass
class LoadedData:
    columns: dict[str, np.ndarray]
    target: np.ndarray
    sha256: str
    rows: int


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
    if scheme in ("s3", "gs"):
        try:
            import fsspec
        except ImportError as e:
            raise TrainerError(
                f"dataset {uri}: {scheme}:// needs fsspec and its {scheme} driver in the trainer "
                "image (pip install 'modelfleet[trainer-cloud]')"
            ) from e
        try:
            with fsspec.open(uri, "rb") as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
        except ImportError as e:  # fsspec is there, its driver for this scheme (s3fs, gcsfs) is not
            raise TrainerError(
                f"dataset {uri}: {scheme}:// needs fsspec and its {scheme} driver in the trainer image ({e})"
            ) from e
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
    missing = [f.name for f in dataset.features if f.name not in names]
    if dataset.target not in names:
        raise TrainerError(
            f"dataset has no target column {dataset.target!r} (columns: {', '.join(sorted(names)[:20])})"
        )
    if missing:
        raise TrainerError(f"dataset has no column(s) {', '.join(missing)} declared in dataset.features")
    if table.num_rows == 0:
        raise TrainerError("dataset has no rows")
    columns: dict[str, np.ndarray] = {}
    for feature in dataset.features:
        col = table.column(feature.name)
        if feature.type == "numeric":
            if not (
                pa.types.is_integer(col.type)
                or pa.types.is_floating(col.type)
                or pa.types.is_boolean(col.type)
                or pa.types.is_null(col.type)
            ):
                raise TrainerError(f"feature {feature.name!r} is declared numeric but the column holds {col.type}")
            columns[feature.name] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        else:
            columns[feature.name] = np.asarray(col.cast(pa.string()).to_pylist(), dtype=object)
    target = table.column(dataset.target)
    if target.null_count:
        raise TrainerError(f"target column {dataset.target!r} has {target.null_count} empty value(s)")
    return LoadedData(columns, target.to_numpy(zero_copy_only=False), digest, table.num_rows)
