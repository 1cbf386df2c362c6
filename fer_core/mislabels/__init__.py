"""Suspected mislabels: out-of-fold probabilities, ranking with cleanlab, cached results, the review queue.

Imports the ground floor, `dataset`, `duplicates`, `curation` and `training`.
"""
