"""Curation: the edit model and its replay (pure), the SQLite edit log, the operations on it, and export.

Imports the ground floor, `dataset` and (lazily, for leak removal) `duplicates`.
"""
