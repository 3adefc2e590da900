"""The thin Kopf layer (layer: handlers): the watches, start-up and shut-down, and one adapter per kind (typed object
-> reconciler -> metrics). Importing this package registers the Kopf handlers."""

from modelfleet.handlers import driftpolicy, mlmodel, startup, trainingjob, watch

__all__ = ["driftpolicy", "mlmodel", "startup", "trainingjob", "watch"]
