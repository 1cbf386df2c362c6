"""Training: the run config, model blocks and builders, sampling, fit and evaluation, run-time estimates,
and the raw-against-curated statistics (compare.py: paired over seeds and over test images).

Imports the layers below: `dataset`, `duplicates`, `curation` (the curated data) and the audit (leak-free scores).
"""
