"""Pure functions turning typed specs and configuration into child manifests (layer: builders; imports `api`)."""
