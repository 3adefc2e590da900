"""All I/O against the Kubernetes API and Prometheus (layer: clients; imports `api` only)."""
