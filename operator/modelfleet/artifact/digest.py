"""sha256 over an artifact directory's files (relative names and contents), excluding the digest file itself."""

from __future__ import annotations

import hashlib
import os
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


# JSON side files are parsed whole: beyond this they are refused (a real one is kilobytes).
MAX_SIDE_FILE_BYTES = 16 << 20
SIDE_FILES = ("metadata.json", "profile.json", "architecture.json", "model_card.json", DIGEST_FILE)


def check_contents(directory: Path) -> None:
    """Refuses an artifact that is not plain files in plain directories: a symlink (it could point anywhere on the
    node, and the digest would vouch for whatever it points at), a device or socket, or an oversized side file."""
    if directory.is_symlink():
        raise DigestMismatch(f"{directory}: the artifact directory is a symbolic link")
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(root) / name
            if path.is_symlink():
                raise DigestMismatch(f"{path}: symbolic links are not allowed in an artifact")
            if not (path.is_dir() or path.is_file()):
                raise DigestMismatch(f"{path}: not a regular file")
    for name in SIDE_FILES:
        path = directory / name
        if path.is_file() and path.stat().st_size > MAX_SIDE_FILE_BYTES:
            raise DigestMismatch(f"{path}: {path.stat().st_size} bytes is more than {MAX_SIDE_FILE_BYTES} allowed")


def verify_directory(directory: Path, expected: str | None = None) -> str:
    """Recomputes the digest; raises DigestMismatch when it differs from the recorded one (or from `expected`), or
    when the directory holds anything but plain files (check_contents)."""
    check_contents(directory)
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
