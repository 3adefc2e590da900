"""Writing the artifact directory atomically: a temporary sibling directory, then a rename; for an s3:// output, the
finished directory is then uploaded with its manifest written last (artifact/objectstore.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from modelfleet.artifact.digest import DIGEST_FILE, directory_digest
from modelfleet.artifact.objectstore import ObjectStore, S3Uri, StoreError
from modelfleet.trainer.errors import ArtifactStoreError


def write_artifact(final: Path, fill: Callable[[Path], None]) -> str:
    """Calls fill(tmpdir), records the digest, then renames into place; a crash never leaves a half artifact at
    `final` (at worst a hidden temporary directory beside it). An existing artifact at `final` is replaced whole."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        fill(tmp)
        digest = directory_digest(tmp)
        (tmp / DIGEST_FILE).write_text(digest + "\n")
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # the model server may run as another user
            if path.is_file():
                with path.open("rb") as f:
                    os.fsync(f.fileno())
        if final.exists():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def check_output(uri: str) -> None:
    """One HEAD on the artifact's bucket: it exists and the credentials are accepted."""
    try:
        ObjectStore.for_uri(uri).check_bucket(S3Uri.parse(uri))
    except StoreError as e:
        raise ArtifactStoreError(f"cannot store the artifact: {e}", permanent=e.permanent) from e


def upload_artifact(directory: Path, uri: str) -> str:
    """Uploads the finished artifact directory to `uri` (s3:// or gs://; credentials from the AWS_* variables)."""
    try:
        return ObjectStore.for_uri(uri).upload_artifact(directory, uri)
    except StoreError as e:
        raise ArtifactStoreError(f"cannot store the artifact: {e}", permanent=e.permanent) from e
