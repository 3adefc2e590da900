"""The peer: a bare scikit-learn fit + predict on the same CSV, same split, same estimator (no artifact, no lineage,
no profile). Usage: python bare_fit.py DATA.csv"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow.csv as pacsv
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from bench.training.params import HYPERPARAMETERS, SPLIT

table = pacsv.read_csv(sys.argv[1])
features = [n for n in table.column_names if n != "target"]
X = np.column_stack([table.column(n).to_numpy() for n in features])
y = table.column("target").to_numpy()
train, test = train_test_split(np.arange(len(y)), test_size=SPLIT, random_state=0, stratify=y)
model = RandomForestClassifier(**HYPERPARAMETERS, random_state=0).fit(X[train], y[train])
print(f"accuracy={accuracy_score(y[test], model.predict(X[test])):.4f}", file=sys.stderr)
