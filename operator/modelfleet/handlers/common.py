"""What the per-kind adapters share."""

from __future__ import annotations

from modelfleet.vocabulary import Key


def object_key(key: Key) -> tuple[str, str]:
    """(namespace, name): how the metrics series of an object are keyed."""
    return key.namespace, key.name
