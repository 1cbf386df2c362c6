"""Suspected mislabels: config, out-of-fold probabilities, ranking with cleanlab, cached results, the review queue.

Imports the layers below: `dataset`, `duplicates`, `curation`, the audit and `training` (each fold is a training run).
"""
