"""The model server runtime (layer: server; imports `api`, `artifact`, `drift`): `python -m modelfleet.server`.
Serves one verified artifact over KServe's Open Inference Protocol v2 (REST) and a plain JSON /predict."""
