"""The training runtime (layer: trainer; imports `api`, `artifact`, `drift`): `python -m modelfleet.trainer`, run
inside the training Job's container. It reads the dataset, fits, evaluates on a hold-out, writes an artifact
directory atomically and reports a compact JSON result through the container's termination message."""
