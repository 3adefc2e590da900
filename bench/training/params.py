"""What both sides of the training benchmark train."""

ROWS = 200_000
SPLIT = 0.2
HYPERPARAMETERS = {"n_estimators": 40, "max_depth": 14, "n_jobs": 1}
