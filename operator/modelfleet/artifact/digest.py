"""sha256 over an artifact directory's files (relative names and contents), excluding the digest file itself."""

from __future__ import annotations

import hashlib
from pathlib import Path

DIGEST_FILE = "digest"
CHUNK = 1 << 20


class DigestMismatch(Exception):
    """The directory's contents do not match its recorded (or the expected) digest."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def directory_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != DIGEST_FILE):
        rel = path.relative_to(directory).as_posix()
        h.update(f"{rel}\0{file_sha256(path)}\n".encode())
    return f"sha256:{h.hexdigest()}"


def verify_directory(directory: Path, expected: str | None = None) -> str:
    """Recomputes the digest; raises DigestMismatch when it differs from the recorded one (or from `expected`)."""
    recorded_path = directory / DIGEST_FILE
    if not recorded_path.exists():
        raise DigestMismatch(f"{directory}: no {DIGEST_FILE} file (not a complete artifact)")
    recorded = recorded_path.read_text().strip()
    actual = directory_digest(directory)
    if actual != recorded:
        raise DigestMismatch(f"{directory}: contents digest {actual} differs from the recorded {recorded}")
    if expected is not None and expected != recorded:
        raise DigestMismatch(f"{directory}: digest {recorded} differs from the expected {expected}")
    return recorded
