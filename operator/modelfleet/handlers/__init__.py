"""The thin Kopf layer (layer: handlers): decorators, body -> model, domain errors -> Kopf errors, status patch.
Importing this package registers every handler."""

from modelfleet.handlers import driftpolicy, mlmodel, startup, trainingjob

__all__ = ["driftpolicy", "mlmodel", "startup", "trainingjob"]
