"""The documents stay true to the tree: README is a short front door that names every CLI command and links
the other documents; the ARCHITECTURE "Where does X go" table names only files that exist."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
README_MAX_LINES = 200
LINKED_DOCUMENTS = ("docs/METHODS.md", "docs/ARCHITECTURE.md", "docs/APP.md", "benchmarks/README.md")
TABLE_HEADING = "## Where does X go"


def where_does_x_go_rows(text: str) -> list[tuple[str, str]]:
    """(what to add, files to touch) per body row of the markdown table under the "Where does X go" heading."""
    section = text.split(TABLE_HEADING, 1)[1] if TABLE_HEADING in text else ""
    section = re.split(r"^#{1,2} ", section, maxsplit=1, flags=re.MULTILINE)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or set(cells[0]) <= set("-: ") or cells[0] == "to add":
            continue  # the separator and the header
        rows.append((cells[0], cells[1]))
    return rows


def repository_paths(cell: str) -> list[str]:
    """Backticked names in `cell` that look like repository paths (a folder part or a file suffix), without placeholders."""
    names = re.findall(r"`([^`]+)`", cell)
    return [name for name in names if "<" not in name and " " not in name and "(" not in name
            and ("/" in name or re.search(r"\.(py|md|sh|toml|txt)$", name))]


def test_the_where_does_x_go_table_names_only_files_that_exist():
    rows = where_does_x_go_rows(ARCHITECTURE.read_text(encoding="utf-8"))
    assert len(rows) >= 6, f"found {len(rows)} rows under {TABLE_HEADING!r} in {ARCHITECTURE}"
    wanted = ("detector", "report section", "model family", "page", "job kind", "CLI command", "view",
              "curation operation")
    for topic in wanted:
        assert any(topic in what for what, _ in rows), f"no row for {topic!r}"
    checked = 0
    for what, files in rows:
        paths = repository_paths(files)
        assert paths, f"the row {what!r} names no file"
        for path in paths:
            assert (ROOT / path.rstrip("/")).exists(), f"{ARCHITECTURE.name}, row {what!r}: {path} does not exist"
            checked += 1
    assert checked >= 10


def test_the_table_check_can_fail():
    text = (f"{TABLE_HEADING}\n\n| to add | files to touch |\n|---|---|\n"
            "| a thing | `fer_core/no_such_module.py`, `fer_core/<package>/<module>.py` |\n")
    rows = where_does_x_go_rows(text)
    assert rows == [("a thing", "`fer_core/no_such_module.py`, `fer_core/<package>/<module>.py`")]
    assert repository_paths(rows[0][1]) == ["fer_core/no_such_module.py"]
    assert not (ROOT / "fer_core/no_such_module.py").exists()


def test_the_readme_is_short_and_links_the_other_documents():
    text = README.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it at most {README_MAX_LINES}"
    for document in LINKED_DOCUMENTS:
        assert f"]({document}" in text, f"README.md does not link {document}"
        assert (ROOT / document).is_file(), f"README.md links {document}, which does not exist"
    assert "python -m pytest -q" in text  # CI runs the README's test command


def cli_commands() -> list[str]:
    """Every command of `python -m fer_core`, as typed: `audit`, `edit relabel`, `jobs submit`, ..."""
    from fer_core.cli import build_parser

    def walk(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    command = f"{prefix} {name}".strip()
                    found.append(command)
                    found.extend(walk(child, command))
        return found

    return walk(build_parser(), "")


def test_the_readme_shows_every_cli_command():
    commands = cli_commands()
    assert {"audit", "edit", "export", "train", "jobs", "report", "mislabels", "edit relabel", "jobs submit"} <= set(commands)
    text = README.read_text(encoding="utf-8")
    missing = [command for command in commands if f"python -m fer_core {command}" not in text]
    assert not missing, f"README.md does not show: {', '.join(f'python -m fer_core {c}' for c in missing)}"
