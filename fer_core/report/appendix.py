"""The report's appendix: fingerprints, settings, versions, and the commands that reproduce every figure."""

from __future__ import annotations

import platform
import shlex
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from fer_core.audit import AuditReport
from fer_core.report.blocks import escape
from fer_core.report.findings import flag_min_score
from fer_core.report.inputs import ReportInputs, ReportSettings

if TYPE_CHECKING:
    from fer_core.jobs import RunRecord

VERSION_PACKAGES = ("numpy", "pandas", "scipy", "pillow", "plotly", "opencv-python-headless", "streamlit")


def appendix_section(inputs: ReportInputs, settings: ReportSettings) -> str:
    """What the report was built from and the commands that reproduce each part."""
    dataset, audit = inputs.audit.dataset, inputs.audit
    facts = [
        ("data", inputs.data_path),
        ("data fingerprint", dataset.fingerprint),
        ("images", f"{len(dataset):,} (" + ", ".join(f"{u} {c:,}" for u, c in dataset.count_by_usage().items()) + ")"),
        ("unreadable images skipped", f"{len(dataset.problems):,}"),
        ("curated data fingerprint", inputs.curated.fingerprint),
        ("workspace", str(inputs.workspace)),
        ("edit log rows", f"{len(inputs.edit_log):,}"),
        ("near-duplicate threshold", f"{audit.config.near_threshold} bits of 64 (pHash)"
                                     + ("; near copies verified on pixels" if getattr(audit.config, "near_mode", "")
                                        == "verified" else "")),
        ("outlier flag", f"outlier score ≥ {flag_min_score(audit):g}; box plot whiskers at 1.5 × IQR"
                         + ("" if getattr(audit.config, "face_stage", True) else "; face detector skipped")),
        ("thumbnails", f"{settings.thumbnail_factor}× nearest-neighbour enlargement of the 48×48 pixels"),
        ("generated", inputs.generated_at),
    ]
    versions = software_versions(inputs.runs)
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in facts + versions)
    commands = "\n".join(escape(line) for line in reproduce_commands(inputs))
    return (f'<table class="facts">{rows}</table>'
                   f"<h3>Commands that reproduce every figure</h3><pre>{commands}</pre>")


def software_versions(runs: Sequence["RunRecord"]) -> list[tuple[str, str]]:
    """Python, the libraries the report used, the code's git commit, and TensorFlow/Keras as the runs recorded."""
    versions = [("python", platform.python_version())]
    for package in VERSION_PACKAGES:
        try:
            versions.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            continue
    commit = _git_commit()
    if commit:
        versions.append(("fer_core commit", commit))
    for key, name in (("tensorflow_version", "tensorflow (runs)"), ("keras_version", "keras (runs)")):
        seen = sorted({str(record.metrics.get(key)) for record in runs if record.metrics and record.metrics.get(key)})
        if seen:
            versions.append((name, ", ".join(seen)))
    return versions


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def audit_options(audit: AuditReport) -> str:
    """The audit's settings as the CLI options that give them (`--near-threshold`, `--near-mode`, `--fast`)."""
    config = audit.config
    options = f"--near-threshold {config.near_threshold}"
    if getattr(config, "near_mode", None):
        options += f" --near-mode {config.near_mode}"
    return options + ("" if getattr(config, "face_stage", True) else " --fast")


def reproduce_commands(inputs: ReportInputs) -> list[str]:
    """Shell lines, with the report's own paths, for the audit, the edit log, each run and this report."""
    data, workspace = shlex.quote(inputs.data_path), shlex.quote(str(inputs.workspace))
    options = audit_options(inputs.audit)
    lines = [
        "# Headline, evidence, box plot: the audit",
        f"python -m fer_core audit {data} --out audit {options} --workspace {workspace}",
        "# What was done: the edit log, and the curated data with counts before/after (manifest.json)",
        f"python -m fer_core edit history --workspace {workspace}",
        f"python -m fer_core export {data} --format csv --out curated.csv --workspace {workspace}",
        "# Suspected mislabels (headline card and evidence; minutes on a CPU)",
        f"python -m fer_core mislabels {data} --out mislabels --workspace {workspace}",
    ]
    if inputs.runs:
        lines.append("# What it changed: each run (metrics.json holds accuracy, leak-free accuracy, confusion matrix)")
        lines += [train_command(inputs.data_path, record, str(inputs.workspace)) for record in inputs.runs]
    run_ids = " ".join(shlex.quote(record.run_id) for record in inputs.runs)
    lines += ["# This report",
              f"python -m fer_core report {data} --out report.html {options} --workspace {workspace}"
              + (f" --runs {run_ids}" if run_ids else "")]
    return lines


def train_command(data_path: str, record: "RunRecord", workspace: str) -> str:
    """The `train` command line of a run's config (the flags the CLI has; learning rate and patience at their defaults)."""
    config = record.config
    parts = ["python -m fer_core train", shlex.quote(data_path), "--model", str(config.get("model")),
             "--sampling", str(config.get("sampling")),
             "--size", str(config.get("size")), "--batch-size", str(config.get("batch_size")),
             "--seed", str(config.get("seed"))]
    for option in ("epochs", "variant", "limit"):  # epochs None: the size's default; variant None: the default
        if config.get(option):
            parts += [f"--{option}", str(config[option])]
    if config.get("raw"):
        parts.append("--raw")
    parts += ["--workspace", shlex.quote(workspace), "--out", shlex.quote(f"runs/{record.run_id}")]
    return " ".join(parts)
