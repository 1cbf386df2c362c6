"""Training: the run config, model blocks and builders, sampling, fit and evaluation, predictions.

Imports the ground floor, `dataset`, `duplicates` (leak-free scores) and `curation` (the curated data).
"""
