"""Drift statistics (layer: drift; numpy only, imports nothing of ours): reference profiles on fixed grids."""
