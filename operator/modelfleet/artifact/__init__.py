"""The artifact format shared by the trainer (writes) and the model server (reads), and its digest.

An artifact is a directory:
  model.skops | model.safetensors + architecture.json   the model, in a safe format (never a bare pickle)
  profile.json                                          the drift reference (modelfleet.drift.profile)
  metadata.json                                         lineage: data, hyperparameters, versions, metrics, times
  model_card.json, MODEL_CARD.md                        the model card at training time (modelfleet.card)
  digest                                                "sha256:<hex>" over every other file (names and contents)
"""

from modelfleet.artifact.digest import DigestMismatch, directory_digest, verify_directory

__all__ = ["DigestMismatch", "directory_digest", "verify_directory"]
