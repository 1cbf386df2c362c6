"""Pure tables and Plotly figures that the pages and the report share, by topic.

Imports anything below it (never `jobs`, `report` or `cli`); pages and the report import it.
"""
