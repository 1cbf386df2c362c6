"""Training: the run config, model blocks and builders, sampling, fit and evaluation, run-time estimates.

Imports the layers below: `dataset`, `duplicates`, `curation` (the curated data) and the audit (leak-free scores).
"""
