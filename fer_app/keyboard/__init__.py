"""Keyboard review: any queue (suspected mislabels, outliers of a kind, duplicate groups, a Review filter)
one item at a time, decided with keys or buttons, one edit batch per decision (review.py); the key
listener component (keys.py, keys.js); the decisions (decisions.py); the pages' ways in (queues.py)."""

from .queues import HISTORY_NOTE, group_review, mode_toggle, outlier_review, review_page

__all__ = ["HISTORY_NOTE", "group_review", "mode_toggle", "outlier_review", "review_page"]
