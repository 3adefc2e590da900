"""Building blocks shared by the three kinds: the model base, bounded string types, durations, conditions."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "modelfleet.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Go's time.ParseDuration units; a duration is one or more number+unit pairs ("90s", "1h30m").
DURATION_PATTERN = r"^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$"  # [.], not a backslash: CEL strings reject it
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float:
    """Seconds in a Kubernetes-style duration ("1h30m" -> 5400.0). Raises ValueError when it does not parse."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 30m, 1h30m)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_RE.findall(value))


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """One x-kubernetes-validations entry."""
    out: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


class ApiModel(BaseModel):
    """snake_case in Python, camelCase on the wire; unknown fields are errors; field docstrings are descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, unset optionals left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
"""An object name that is a DNS label (lower case, digits, dashes; at most 63 characters)."""

Duration = Annotated[
    str,
    Field(
        min_length=2,
        max_length=32,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(f"self.matches('{DURATION_PATTERN}')", "must be a duration such as 90s, 30m or 1h30m")
            ],
        },
    ),
]
"""A duration such as 90s, 30m or 1h30m (Go's time.ParseDuration units)."""

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "maxLength": 32, "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"}
    ),
]
"""A Kubernetes resource quantity such as 2, 500m or 4Gi."""

HyperValue = Annotated[
    int | float | str | bool,
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True}),
]

LibraryVersion = Annotated[str, Field(max_length=64)]

Timestamp = Annotated[
    str, Field(max_length=64), WithJsonSchema({"type": "string", "format": "date-time", "maxLength": 64})
]


class Condition(ApiModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: str = Field(max_length=64, pattern=r"^[A-Z][A-Za-z0-9]*$")
    """CamelCase type, e.g. Ready."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str = Field(default="", max_length=128)
    """CamelCase reason for the last transition."""
    message: str = Field(default="", max_length=4096)
    """Human-readable detail."""
    last_transition_time: Timestamp | None = None
    """When status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation this condition was computed from."""


Conditions = Annotated[
    list[Condition],
    Field(max_length=16, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
]


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: Name
    """Name of the referenced object."""
