"""Artifacts and datasets in S3-compatible object storage (AWS S3, versitygw, MinIO, Ceph RGW...), and in Google Cloud
Storage through its S3-compatible XML API (gs://).

An artifact at s3://bucket/prefix is written in two steps, because S3 has no rename:
  1. every file of the local artifact directory goes under s3://bucket/prefix/.upload-<id>/,
  2. then s3://bucket/prefix/manifest.json, which names the upload and each file's size and sha256, is written last.
A reader sees an artifact only through its manifest: a half-finished upload (no manifest) is no artifact, and an
object whose bytes differ from the manifest is refused while it is read, before anything is deserialised.

Credentials and the endpoint come from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL), which pods get from a Secret. Messages name the endpoint, bucket and
object, never a key.

gs:// locations take the same path, code and checks included: Google Cloud Storage answers the S3 API at
storage.googleapis.com with HMAC keys (its "interoperability" access), which go in the same two AWS_* variables, as
Google documents for S3 tools. A gs:// location never goes to an S3 endpoint: its endpoint is Google's, or
MODELFLEET_GCS_ENDPOINT (a proxy, or an S3 server standing in for Google in tests)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from modelfleet.artifact.digest import (
    CHUNK,
    DIGEST_FILE,
    DigestMismatch,
    directory_digest,
    file_sha256,
    verify_directory,
)

MANIFEST = "manifest.json"
UPLOAD_PREFIX = ".upload-"
MAX_MANIFEST_BYTES = 1 << 20
DEFAULT_MAX_ARTIFACT_BYTES = 4 << 30
DEFAULT_ENDPOINT = "https://s3.amazonaws.com"
DEFAULT_REGION = "us-east-1"
ENDPOINT_ENV = "AWS_ENDPOINT_URL"
GCS_ENDPOINT = "https://storage.googleapis.com"
GCS_ENDPOINT_ENV = "MODELFLEET_GCS_ENDPOINT"
GCS_REGION = "auto"  # what Google's XML API takes in SigV4 signatures for any bucket location
OBJECT_SCHEMES = ("s3", "gs")
# Codes S3 answers for credentials it does not accept (AWS, versitygw and MinIO agree on these).
DENIED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AllAccessDisabled"}
)
MISSING = frozenset({"NoSuchBucket", "NoSuchKey", "NotFound"})


class StoreError(Exception):
    """An object cannot be read or written. `permanent` errors (missing bucket or object, refused credentials,
    contents that do not match) do not go away by retrying; an unreachable endpoint may."""

    def __init__(self, message: str, *, permanent: bool, missing: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.missing = missing


def is_object_uri(uri: str) -> bool:
    """An s3:// or gs:// location: written by upload, read by download, never mounted."""
    return urllib.parse.urlparse(uri).scheme in OBJECT_SCHEMES


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str
    scheme: str = "s3"

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme not in OBJECT_SCHEMES or not parsed.netloc:
            raise StoreError(f"{uri}: not an s3://bucket/key or gs://bucket/key location", permanent=True)
        return cls(parsed.netloc, parsed.path.strip("/"), parsed.scheme)

    def child(self, name: str) -> S3Uri:
        return S3Uri(self.bucket, f"{self.key}/{name}" if self.key else name, self.scheme)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class S3Settings:
    endpoint: str = DEFAULT_ENDPOINT
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    region: str = DEFAULT_REGION

    def __repr__(self) -> str:  # never print a key
        return f"S3Settings(endpoint={self.endpoint!r}, region={self.region!r})"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, endpoint: str | None = None, *, scheme: str = "s3"
    ) -> S3Settings:
        """Settings for `scheme`'s locations: for s3://, `endpoint` (the operator's) or the AWS variables'; for gs://,
        Google's XML API (or MODELFLEET_GCS_ENDPOINT), never an S3 endpoint, with the same HMAC key variables."""
        env = os.environ if env is None else env
        keys = {
            "access_key": env.get("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env.get("AWS_SECRET_ACCESS_KEY") or None,
        }
        if scheme == "gs":
            return cls(endpoint=env.get(GCS_ENDPOINT_ENV) or GCS_ENDPOINT, region=GCS_REGION, **keys)
        return cls(
            endpoint=(endpoint or env.get(ENDPOINT_ENV) or env.get("AWS_ENDPOINT_URL_S3") or DEFAULT_ENDPOINT),
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
            **keys,
        )


class ObjectStore:
    """One endpoint with one set of credentials. Calls block (they run in the trainer, the server's start-up, or an
    operator worker thread)."""

    def __init__(self, settings: S3Settings) -> None:
        import urllib3
        from minio import Minio

        self.settings = settings
        parsed = urllib.parse.urlparse(
            settings.endpoint if "://" in settings.endpoint else f"https://{settings.endpoint}"
        )
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise StoreError(f"S3 endpoint {settings.endpoint!r} is not an http(s):// URL", permanent=True)
        self.endpoint = f"{parsed.scheme}://{parsed.netloc}"
        # Few, quick retries: an unreachable endpoint is reported in seconds, not after urllib3's minutes of backoff.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        )
        self.client = Minio(
            parsed.netloc,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            session_token=settings.session_token,
            secure=parsed.scheme == "https",
            region=settings.region,  # given, so no GetBucketLocation round trip (and no permission for it)
            http_client=http,
        )

    @classmethod
    def from_env(cls, endpoint: str | None = None) -> ObjectStore:
        return cls(S3Settings.from_env(endpoint=endpoint))

    @classmethod
    def for_uri(cls, uri: str, endpoint: str | None = None) -> ObjectStore:
        """The store of `uri`'s scheme, from this process' environment (`endpoint`: an s3:// endpoint override)."""
        return cls(S3Settings.from_env(endpoint=endpoint, scheme=S3Uri.parse(uri).scheme))

    # -- errors
    def _explain(self, e: Exception, target: S3Uri, doing: str) -> StoreError:
        from minio.error import S3Error

        where = f"{target} (endpoint {self.endpoint})"
        if isinstance(e, S3Error):
            if e.code == "NoSuchBucket":
                return StoreError(
                    f"bucket {target.bucket!r} does not exist at {self.endpoint}", permanent=True, missing=True
                )
            if e.code in MISSING:
                return StoreError(f"{where}: no such object", permanent=True, missing=True)
            if e.code in DENIED:
                return StoreError(
                    f"access to bucket {target.bucket!r} at {self.endpoint} was refused while {doing} ({e.code}): "
                    "check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) in the artifacts Secret",
                    permanent=True,
                )
            return StoreError(f"{where}: {doing} failed: {e.code}: {e.message}", permanent=False)
        return StoreError(f"cannot reach the S3 endpoint {self.endpoint} while {doing} {target}: {e}", permanent=False)

    def _call(self, target: S3Uri, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from minio.error import MinioException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except (MinioException, HTTPError, OSError, ValueError) as e:
            raise self._explain(e, target, doing) from e

    # -- single objects
    def exists(self, target: S3Uri) -> bool:
        """HEAD: True when the object is there, False when it or its bucket is not; StoreError when it cannot tell."""
        try:
            self._call(target, "looking for", self.client.stat_object, target.bucket, target.key)
        except StoreError as e:
            if e.missing:
                return False
            raise
        return True

    def check_bucket(self, target: S3Uri) -> None:
        """HEAD on the bucket: it exists and these credentials are accepted (StoreError naming it otherwise)."""
        if not self._call(target, "looking for the bucket of", self.client.bucket_exists, target.bucket):
            raise StoreError(
                f"bucket {target.bucket!r} does not exist at {self.endpoint}", permanent=True, missing=True
            )

    def put_bytes(self, target: S3Uri, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call(
            target,
            "writing",
            self.client.put_object,
            target.bucket,
            target.key,
            io.BytesIO(data),
            len(data),
            content_type,
        )

    def put_file(self, target: S3Uri, path: Path) -> None:
        self._call(target, "writing", self.client.fput_object, target.bucket, target.key, str(path))

    def list(self, prefix: S3Uri) -> list[str]:
        """Keys under the prefix (recursive), as the S3 API lists them."""
        objects = self._call(
            prefix,
            "listing",
            lambda: list(self.client.list_objects(prefix.bucket, prefix=f"{prefix.key}/", recursive=True)),
        )
        return [str(o.object_name) for o in objects]

    def remove_prefix(self, prefix: S3Uri) -> None:
        for key in self.list(prefix):
            self._call(prefix, "removing", self.client.remove_object, prefix.bucket, key)

    def read_to(self, source: S3Uri, out: io.BufferedIOBase | Any, max_bytes: int, *, sha256: str | None = None) -> int:
        """Streams the object into `out`; refuses one larger than max_bytes (by HEAD first, then while reading) and,
        given `sha256`, one whose bytes differ. Returns the size."""
        info = self._call(source, "reading", self.client.stat_object, source.bucket, source.key)
        if info.size is not None and info.size > max_bytes:
            raise StoreError(f"{source}: {info.size} bytes is more than the {max_bytes} allowed", permanent=True)
        resp = self._call(source, "reading", self.client.get_object, source.bucket, source.key)
        h = hashlib.sha256()
        size = 0
        try:
            while chunk := self._call(source, "reading", resp.read, CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise StoreError(f"{source}: more than the {max_bytes} bytes allowed", permanent=True)
                h.update(chunk)
                out.write(chunk)
        finally:
            resp.close()
            resp.release_conn()
        if sha256 is not None and h.hexdigest() != sha256:
            raise StoreError(
                f"{source}: contents (sha256 {h.hexdigest()}) differ from the manifest's sha256 {sha256}",
                permanent=True,
            )
        return size

    def download(self, source: S3Uri, dest: Path, max_bytes: int) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("wb") as out:
            self.read_to(source, out, max_bytes)
        return dest

    # -- artifacts
    def upload_artifact(self, directory: Path, uri: str) -> str:
        """Uploads a finished artifact directory (with its digest file) and writes the manifest last. Returns the
        digest. An artifact already at `uri` is replaced whole: readers see the old manifest or the new one."""
        base = S3Uri.parse(uri)
        digest = directory_digest(directory)
        upload = f"{UPLOAD_PREFIX}{uuid.uuid4().hex[:12]}"
        previous = self._manifest_or_none(base)
        files = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            rel = path.relative_to(directory).as_posix()
            self.put_file(base.child(f"{upload}/{rel}"), path)
            files.append({"path": rel, "size": path.stat().st_size, "sha256": file_sha256(path)})
        manifest = {"digest": digest, "upload": upload, "files": files}
        self.put_bytes(base.child(MANIFEST), json.dumps(manifest, indent=1).encode(), "application/json")
        if previous and previous.get("upload") != upload:  # the replaced upload: nothing names it any more
            self.remove_prefix(base.child(str(previous["upload"])))
        return digest

    def artifact_exists(self, uri: str) -> bool:
        """Whether a complete artifact is at `uri`: one HEAD on its manifest."""
        return self.exists(S3Uri.parse(uri).child(MANIFEST))

    def _manifest_or_none(self, base: S3Uri) -> dict[str, Any] | None:
        try:
            return self.read_manifest(base)
        except StoreError as e:
            if e.missing:
                return None
            raise

    def read_manifest(self, base: S3Uri) -> dict[str, Any]:
        target = base.child(MANIFEST)
        buf = io.BytesIO()
        try:
            self.read_to(target, buf, MAX_MANIFEST_BYTES)
        except StoreError as e:
            if e.missing and "no such object" in str(e):
                raise StoreError(
                    f"{target} does not exist: no complete artifact at {base} (never written, deleted, or its upload "
                    "did not finish)",
                    permanent=True,
                    missing=True,
                ) from e
            raise
        try:
            manifest = json.loads(buf.getvalue())
            files = manifest["files"]
            upload = str(manifest["upload"])
            str(manifest["digest"])
            for f in files:
                _safe_relative(str(f["path"]), target)
                int(f["size"]), str(f["sha256"])
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"{target} is not a valid artifact manifest: {e}", permanent=True) from e
        if not upload.startswith(UPLOAD_PREFIX) or "/" in upload:
            raise StoreError(f"{target} names an upload {upload!r} outside the artifact", permanent=True)
        return dict(manifest)

    def download_artifact(
        self, uri: str, dest: Path, *, max_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES, expected_digest: str | None = None
    ) -> str:
        """Fetches the artifact at `uri` into the empty directory `dest` and verifies it: every file against the
        manifest while it streams, then the whole directory against its digest and `expected_digest`. Nothing is
        deserialised here; on any refusal `dest` is emptied. Returns the digest."""
        base = S3Uri.parse(uri)
        manifest = self.read_manifest(base)
        total = sum(int(f["size"]) for f in manifest["files"])
        if total > max_bytes:
            raise StoreError(
                f"{base}: the artifact's {total} bytes are more than the {max_bytes} allowed", permanent=True
            )
        if expected_digest is not None and manifest["digest"] != expected_digest:
            raise StoreError(
                f"{base.child(MANIFEST)}: digest {manifest['digest']} differs from the expected {expected_digest}",
                permanent=True,
            )
        dest.mkdir(parents=True, exist_ok=True)
        try:
            for f in manifest["files"]:
                path = dest / _safe_relative(str(f["path"]), base)
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("wb") as out:
                    self.read_to(
                        base.child(f"{manifest['upload']}/{f['path']}"), out, int(f["size"]), sha256=f["sha256"]
                    )
            if not (dest / DIGEST_FILE).is_file():
                raise StoreError(f"{base}: the manifest lists no {DIGEST_FILE} file", permanent=True)
            try:
                return verify_directory(dest, expected_digest or str(manifest["digest"]))
            except DigestMismatch as e:
                raise StoreError(f"{base}: {e}", permanent=True) from e
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise


def _safe_relative(rel: str, where: S3Uri) -> str:
    """A manifest path that stays inside the artifact directory (no absolute path, no '..', no empty segment)."""
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in rel:
        raise StoreError(f"{where}: the manifest names a path {rel!r} outside the artifact", permanent=True)
    return rel
