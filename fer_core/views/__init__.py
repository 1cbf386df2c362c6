"""Pure tables and Plotly figures that the pages and the report share, by topic.

Imports any layer below (audit, curation, training, mislabels); never `jobs`, `report` or `cli`.
"""
