"""Every package directory ships: a plain `pip install .` must hold what an editable one finds."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder(package: str) -> Path:
    """Where ``package`` lives, by [tool.setuptools] package-dir."""
    mapping: dict[str, str] = CONFIG["package-dir"]
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        if (root := mapping.get(".".join(parts[:n]))) is not None:
            return ROOT / root / Path(*parts[n:])
    raise AssertionError(f"{package} is in no package-dir")


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(CONFIG["packages"])
    found = set()
    for name, folder in CONFIG["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    data_only = listed - found  # folders of data (web templates): listed, with package-data
    assert found <= listed
    for package in data_only:
        assert _folder(package).is_dir() and package in CONFIG["package-data"], package


def test_every_web_asset_ships() -> None:
    """The web pages' templates and static files are package data: each matches a glob of
    its folder's [tool.setuptools.package-data], or a plain `pip install .` serves pages
    without them."""
    web = _folder("oxen.server.web")
    assets = [p for sub in ("templates", "static") for p in (web / sub).rglob("*") if p.is_file()]
    assert assets
    missing = []
    for p in assets:
        package = "oxen.server.web." + ".".join(p.parent.relative_to(web).parts)
        globs: list[str] = CONFIG["package-data"].get(package, [])
        if not any(p.relative_to(p.parent).match(g) for g in globs):
            missing.append(str(p.relative_to(web)))
    assert missing == []
