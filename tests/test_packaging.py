"""Packaging: the wheel a user builds with `pip wheel .` holds every package and data file of the
tree, and nothing else.

The wheel is built once per session from a copy of the files a build reads (so a stale build/ folder
in the checkout cannot slip old files in), with pip's usual build isolation: it fetches setuptools
from the package index, or from pip's cache. `.ci/run` goes further and installs that wheel into a
fresh venv and runs it from outside the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a build reads: pyproject.toml names README.md as the long description.
BUILD_INPUTS = ("pyproject.toml", "README.md", "qmt_mcp", "prompts", "config")
# Folders shipped under another name (pyproject.toml's package-dir), with the data files they carry.
MAPPED = {"prompts": ("qmt_mcp/_prompts", "*.md"), "config": ("qmt_mcp/_config_examples", "*.toml")}
DIST_INFO = "qmt_mcp-0.1.0.dist-info"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The built wheel's files, by name."""
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    (path,) = out.glob("qmt_mcp-*.whl")
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}


@pytest.fixture(scope="session")
def wheel_files(wheel: dict[str, bytes]) -> set[str]:
    return set(wheel)


def _tree_files() -> set[str]:
    """Every file the wheel must carry, by its path inside the wheel."""
    files = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "qmt_mcp").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    for folder, (package, pattern) in MAPPED.items():
        for p in [*(ROOT / folder).glob("*.py"), *(ROOT / folder).glob(pattern)]:
            files.add(f"{package}/{p.name}")
    return files


def _package_folders() -> set[str]:
    folders = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "qmt_mcp").rglob("*.py")
               if "__pycache__" not in p.parts}
    return folders | {package for package, _ in MAPPED.values()}


def test_every_package_folder_is_in_the_wheel(wheel_files: set[str]) -> None:
    shipped = {name.rsplit("/", 1)[0] for name in wheel_files if name.endswith(".py")}
    assert _package_folders() - shipped == set()
    assert "qmt_mcp/backends/xtq" in shipped


def test_every_source_and_data_file_is_in_the_wheel(wheel_files: set[str]) -> None:
    # A new kind of data file (an .html page, a .json table) fails here until pyproject.toml's
    # [tool.setuptools.package-data] names it.
    assert _tree_files() - wheel_files == set()
    assert {"qmt_mcp/py.typed", "qmt_mcp/_prompts/place_order_safely.md",
            "qmt_mcp/_config_examples/windows-worker.toml"} <= wheel_files


def test_the_wheel_holds_qmt_mcp_and_nothing_else(wheel_files: set[str]) -> None:
    # No tests, no top-level `prompts` or `config` package, no bytecode from the build machine.
    tops = {name.split("/", 1)[0] for name in wheel_files}
    assert tops == {"qmt_mcp", DIST_INFO}
    package_files = {n for n in wheel_files if not n.startswith(DIST_INFO + "/")}
    assert package_files - _tree_files() == set()
    print(f"wheel: {len(wheel_files)} files ({len(package_files)} in qmt_mcp/)")


def test_the_wheel_declares_the_qmt_mcp_command(wheel: dict[str, bytes]) -> None:
    entry_points = wheel[f"{DIST_INFO}/entry_points.txt"].decode().splitlines()
    assert "qmt-mcp = qmt_mcp.cli:main" in entry_points
    assert "qmt_mcp/cli.py" in wheel
