"""The layout's rules, checked on the source: the library never imports streamlit, nothing uses pickle,
modules stay small, pages stay thin."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
SOURCES = [path for folder in ("fer_core", "fer_app", "pages", "tests", "benchmarks") for path in
           (ROOT / folder).rglob("*.py")] + [ROOT / "app.py"]


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_under_fer_core_imports_streamlit():
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "fer_core").rglob("*.py")
                 if "streamlit" in imported_modules(path)]
    assert offenders == []


def test_no_module_uses_pickle():
    """Caches are numpy/parquet/JSON: a planted pickle runs code when loaded (issue 9 S4)."""
    offenders = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        uses = "pickle" in imported_modules(path) or any(
            isinstance(node, ast.Attribute) and node.attr in ("read_pickle", "to_pickle") for node in ast.walk(tree))
        if uses:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_no_module_is_over_the_size_limit():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
             for folder in ("fer_core", "fer_app") for path in (ROOT / folder).rglob("*.py")}
    sizes.update({str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
                  for path in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]})
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}


def test_only_fer_app_and_pages_import_streamlit_and_pages_hold_no_array_logic():
    for page in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]:
        imported = imported_modules(page)
        assert not imported & {"numpy", "pandas"}, page
        assert "unsafe_allow_html" not in page.read_text(encoding="utf-8"), page
    for module in (ROOT / "fer_app").rglob("*.py"):
        assert "unsafe_allow_html" not in module.read_text(encoding="utf-8"), module


def test_imports_run_one_way():
    """fer_core never imports the app glue or the CLI (the CLI and the app sit on top of the library)."""
    offenders = []
    for path in (ROOT / "fer_core").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "fer_core").parts or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and ((node.module or "").startswith(("fer_app", "fer_core.cli"))
                                                     or (node.level and (node.module or "").startswith("cli"))):
                offenders.append(str(path.relative_to(ROOT)))
            elif isinstance(node, ast.Import) and any(alias.name.startswith("fer_app") for alias in node.names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
