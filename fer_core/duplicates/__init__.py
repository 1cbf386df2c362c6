"""Exact and near duplicates: hashing, candidate pairs, verification on pixels, groups, conflicts and leaks.

Imports the ground floor and `dataset`.
"""
