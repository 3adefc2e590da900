"""ModelFleet: a Kubernetes operator that trains, serves and watches ML models from YAML."""

__version__ = "0.1.0"

GROUP = "modelfleet.io"
VERSION = "v1alpha1"
