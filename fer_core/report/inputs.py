"""What the report is built from: settings, the inputs read once (audit, edit log, runs, mislabels, the newest
curated-vs-raw comparison), the choice of runs, and the checked, atomic output file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from fer_core.audit import AuditReport
from fer_core.curation.edits import database_path, read_curation
from fer_core.curation.replay import Edit, replay_edits
from fer_core.dataset.loading import Dataset
from fer_core.files import make_folder, write_text_atomically
from fer_core.paths import check_output_file
from fer_core.views import audit_table as views
from fer_core.views import image_tiles
from fer_core.views import runs as results
from fer_core.workspace import resolve_workspace

if TYPE_CHECKING:
    from fer_core.jobs import RunRecord


@dataclass(frozen=True)
class ReportSettings:
    """How many examples the evidence shows, and how large."""

    conflicting_groups: int = 3
    members_per_group: int = 8
    leak_pairs: int = 4
    outliers: int = 12
    thumbnail_factor: int = image_tiles.UPSCALE_FACTOR  # 48 px → 144 px, nearest neighbour: crisp pixels


@dataclass(frozen=True, eq=False)
class ReportInputs:
    """Everything the report shows, read once: the audit, the curated view, the edit log and the chosen runs."""

    audit: AuditReport
    table: pd.DataFrame
    edit_log: list[Edit]
    curated: Dataset
    runs: list["RunRecord"]
    workspace: Path
    data_path: str
    experiment: list["RunRecord"] = field(default_factory=list)  # the runs of one sweep, for the grid
    mislabels: Any = None  # mislabels.results.MislabelResult of the curated data (or of the data as loaded), when computed
    comparison: dict[str, Any] | None = None  # compare.json of the newest finished curated-vs-raw experiment
    comparison_problem: str | None = None  # why that experiment could not be read, when it could not
    generated_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def check_output_path(out: str | os.PathLike) -> Path:
    """The report's path, checked before any work (one-line ValueError): not a folder, not under a file, writable."""
    return check_output_file(Path(out).expanduser(), "--out")


def read_training_runs(workspace: str | os.PathLike | None = None) -> list["RunRecord"]:
    """Every training run, newest first; none when the workspace has no database (nothing is created)."""
    if not database_path(workspace).exists():
        return []
    from fer_core import jobs

    # Other job kinds (e.g. mislabel folds) are not runs to compare.
    return [record for record in jobs.list_runs(workspace) if getattr(record, "kind", "train") == "train"]


def read_finished_runs(workspace: str | os.PathLike | None = None) -> list["RunRecord"]:
    """Succeeded training runs with metrics, newest first."""
    return results.finished_with_metrics(read_training_runs(workspace))


def pick_experiment(runs: Sequence["RunRecord"], chosen: Sequence["RunRecord"]) -> list["RunRecord"]:
    """The runs of the experiment (a model × sampling sweep) the chosen runs belong to, else of the newest one."""
    ids = [record.experiment_id for record in (*chosen, *runs) if getattr(record, "experiment_id", None)]
    return [record for record in runs if ids and record.experiment_id == ids[0]]


def choose_runs(finished: Sequence["RunRecord"], run_ids: Sequence[str] = ()) -> list["RunRecord"]:
    """The runs to show, in order: the given ids (ValueError naming an unknown or unfinished one), else
    the default comparison (newest raw run, newest curated run), else the one finished run."""
    by_id = {record.run_id: record for record in finished}
    if run_ids:
        missing = [run_id for run_id in run_ids if run_id not in by_id]
        if missing:
            known = ", ".join(by_id) or "none"
            raise ValueError(f"run {missing[0]!r} is not a finished run with metrics in this workspace "
                             f"(finished runs: {known})")
        return [by_id[run_id] for run_id in dict.fromkeys(run_ids)]
    if len(finished) >= 2:
        return [by_id[run_id] for run_id in results.default_comparison(list(finished))]
    return list(finished)


def gather_inputs(audit: AuditReport, workspace: str | os.PathLike | None = None, run_ids: Sequence[str] = (),
                  data_path: str | os.PathLike | None = None) -> ReportInputs:
    """Read the edit log (checked against the audited data) and the chosen runs of `workspace`."""
    home = resolve_workspace(workspace)
    curated, log = read_curation(audit.dataset, home)
    table = views.annotate(audit, replay_edits(log))
    every_run = read_training_runs(home)
    runs = choose_runs(results.finished_with_metrics(every_run), run_ids)
    data = str(data_path if data_path is not None else audit.dataset.source)
    comparison, problem = read_newest_comparison(every_run, data, home)
    return ReportInputs(audit=audit, table=table, edit_log=log, curated=curated, runs=runs, workspace=home,
                        data_path=data, experiment=pick_experiment(every_run, runs),
                        mislabels=read_mislabels(curated, audit.dataset, home), comparison=comparison,
                        comparison_problem=problem)


def read_newest_comparison(runs: Sequence["RunRecord"], data_path: str,
                           workspace: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(compare.json, None) of the newest comparison experiment on this data whose runs all succeeded
    (computed and stored on its first read, as the app does); (None, why) when that one cannot be read;
    (None, None) when there is none."""
    from fer_core.jobs.compare import comparison_experiments, read_comparison

    data = Path(data_path).expanduser().resolve()
    for experiment_id, members in comparison_experiments(runs).items():
        if Path(members[0].data_path).resolve() != data or any(run.state != results.SUCCEEDED for run in members):
            continue
        try:
            return read_comparison(experiment_id, workspace), None
        except ValueError as error:
            return None, f"experiment {experiment_id} could not be compared: {error}"
    return None, None


def read_mislabels(curated: Dataset, raw: Dataset, workspace: Path) -> Any:
    """The cached suspected-mislabel result (default settings, as `python -m fer_core mislabels` computes it)
    for the curated data, else for the data as loaded; None when neither was computed. Never computes."""
    try:
        from fer_core.mislabels.config import MislabelConfig
        from fer_core.mislabels.results import cache_key, read_cached_result
    except ImportError:
        return None
    for dataset in dict.fromkeys((curated, raw)):
        result = read_cached_result(cache_key(dataset, MislabelConfig()), workspace)
        if result is not None:
            return result
    return None


def download_name(audit: AuditReport) -> str:
    """A file name for the report of this data: `fer_audit_report_<fingerprint>.html`."""
    return f"fer_audit_report_{audit.dataset.fingerprint[:12]}.html"


def write_report(text: str, out: str | os.PathLike) -> Path:
    """Write the report atomically (a reader never sees half a file), creating its folder if needed."""
    path = check_output_path(out)
    make_folder(path.parent)
    return write_text_atomically(path, text)
