"""observe -> compute -> apply, one module per kind; no Kopf imports (layer: reconcilers)."""
