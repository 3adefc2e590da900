"""Pure functions for conditions and status (layer: status; imports `api` only)."""
