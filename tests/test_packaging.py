"""Every package directory ships: a plain `pip install .` must hold what an editable one finds."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = config["package-dir"]
    listed = set(config["packages"])
    found = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_every_web_asset_ships() -> None:
    """The web pages' templates and static files are package data: each matches a glob of
    [tool.setuptools.package-data], or a plain `pip install .` serves pages without them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs: list[str] = config["package-data"]["oxen.server.web"]
    folder = ROOT / config["package-dir"]["oxen.server"] / "web"
    assets = [
        p for sub in ("templates", "static") for p in (folder / sub).rglob("*") if p.is_file()
    ]
    assert assets
    missing = [
        str(p.relative_to(folder))
        for p in assets
        if not any(p.relative_to(folder).match(g) for g in globs)
    ]
    assert missing == []
