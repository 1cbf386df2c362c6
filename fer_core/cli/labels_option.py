"""`--labels`, the option of every command that loads data: how a dataset's emotion folders or CSV label
values become its label set (fer_core.labels); what was given is remembered in the workspace."""

from __future__ import annotations

import argparse
from pathlib import Path

from fer_core.dataset.label_sets import choose_labels

LABELS_HELP = ("the label set, when the data's own is not wanted: names in index order "
               "(angry,disgust,fear,happy,sad,surprise,neutral,contempt) or folder → emotion "
               "(anger=angry,happiness=happy,...; every folder, each to its own name); remembered in the "
               "workspace for this data, 'default' forgets it. Default: FER-2013's seven, then any other "
               "emotion folder (sorted) or CSV label 7, 8, ... (class_7, ...)")


def add_labels_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", metavar="NAMES", default=None, help=LABELS_HELP)


def remember_labels(data: str | None, workspace: str | None, labels: str | None) -> None:
    """For a command that queues work on DATA without loading it (jobs submit, sweep, compare): the workers load
    it with what the workspace remembers, so `--labels` is checked and remembered here."""
    if labels is not None and data is not None:
        choose_labels(Path(data), workspace, labels)
