"""The API of ModelFleet (layer: api; imports nothing of ours): pydantic models of the custom resources, the single
source of truth from which `crds/` and the chart's CRDs are generated."""
