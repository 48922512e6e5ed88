"""The shape the design promises: a thin CLI over a core that never prints, and
dependencies that are all used."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "redpacket"
# Distribution name -> the module it provides.
MODULES = {"SQLAlchemy": "sqlalchemy", "psycopg": "psycopg", "alembic": "alembic",
           "click": "click", "rich": "rich", "PyMySQL": "pymysql"}  # fmt: skip


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_cli_parses_arguments_and_only_cli_and_report_render() -> None:
    for path in modules():
        part = path.relative_to(PACKAGE).parts[0]
        names = imported(path)
        if part != "cli":
            assert "click" not in names, path
        if part not in ("cli", "report"):
            assert "rich" not in names, path


def test_the_core_never_prints() -> None:
    for path in modules():
        if path.relative_to(PACKAGE).parts[0] == "cli":
            continue
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ]
        assert not calls, f"{path} prints"


def test_every_dependency_is_imported_by_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    used = set().union(*(imported(path) for path in modules()))
    for requirement in project["dependencies"]:
        name = requirement.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
        assert MODULES.get(name, name) in used, f"{name} is a dependency nothing imports"


def test_package_data_exists() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, files in setuptools["package-data"].items():
        folder = ROOT / setuptools["package-dir"].get(package, package.replace(".", "/"))
        for name in files:
            assert list(folder.glob(name)), f"package-data names {package}/{name}: missing"


def test_every_package_is_shipped() -> None:
    """A package missing from pyproject's list works in a checkout and breaks once installed."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ])  # fmt: skip
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in PACKAGE.rglob("__init__.py")}
    assert found - listed == set()


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_says_why_it_exists(path: Path) -> None:
    if path.name == "__main__.py":
        return
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no docstring"
