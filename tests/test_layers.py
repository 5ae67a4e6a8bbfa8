"""The import structure the docs promise, checked from the source: layers import only
downwards, nothing imports in a circle, and the layer-specific stacks stay where they
belong.

``storage/``, ``cli/`` and ``server/`` are installed as ``oxen.storage``, ``oxen.cli`` and
``oxen.server`` (``package-dir`` in pyproject.toml), so a plain reading of the tree cannot
tell that ``from oxen.storage import Store`` means ``storage/__init__.py``.  This test
resolves imports through that same mapping, so the check sees every edge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each folder or module of the project and its layer: a module may import only from its
# own layer or lower ones.  bench/ sits above everything and is imported by nothing.
LAYERS: list[tuple[str, int]] = [
    ("oxen/errors.py", 0),
    ("oxen/faults.py", 0),
    ("oxen/progress.py", 0),
    ("storage/", 0),
    ("oxen/config.py", 1),
    ("oxen/formats/", 1),
    ("oxen/db/", 2),
    ("oxen/objects/", 3),
    ("oxen/trees/", 4),
    ("oxen/worktree/", 4),
    ("oxen/core/", 5),
    ("oxen/verbs/", 6),
    ("oxen/serving/", 6),
    ("oxen/sync/", 7),
    ("oxen/repo.py", 8),
    ("oxen/remote.py", 8),
    ("oxen/api.py", 9),
    ("oxen/__init__.py", 10),
    ("cli/", 11),
    ("server/", 11),
    ("server/web/", 11),  # the web pages: over server/ and oxen.serving.browsing
    ("bench/", 12),
]


def package_dirs() -> dict[str, str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return dict(config["package-dir"])


def module_files() -> dict[str, Path]:
    """Import name -> file, through pyproject's package-dir mapping (and bench/)."""
    out: dict[str, Path] = {}
    roots = {**package_dirs(), "bench": "bench"}
    for package, folder in roots.items():
        for path in (ROOT / folder).rglob("*.py"):
            if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
                continue  # git-ignored scratch (bench/.work, bench/.peers: other venvs)
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if name.startswith(
                tuple(f"{p}." for p in roots if p != package and p.startswith(package + "."))
            ):
                continue  # a folder mapped elsewhere (oxen.storage is storage/, not oxen/storage)
            out[name] = path
    return out


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules ``path`` imports, at any depth (functions and TYPE_CHECKING too)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer_of(path: Path) -> int:
    rel = path.relative_to(ROOT).as_posix()
    best = max((p for p, _ in LAYERS if rel == p or rel.startswith(p)), key=len)
    return dict(LAYERS)[best]


def graph() -> tuple[dict[str, set[str]], dict[str, Path]]:
    files = module_files()
    known = set(files)
    edges = {}
    for name, path in files.items():
        # a package's __init__ is imported on the way to any of its modules: not an edge
        edges[name] = {t for t in imports_of(path, name, known) if not name.startswith(t + ".")}
    return edges, files


def test_the_mapping_is_resolved() -> None:
    edges, _ = graph()
    assert "oxen.storage" in edges["oxen.objects.object_store"]
    assert "oxen.storage.errors" in edges["oxen.cli.main"]


def test_every_module_has_a_layer() -> None:
    _, files = graph()
    for path in files.values():
        layer_of(path)  # raises ValueError (max of nothing) for a module on no layer


def test_imports_only_go_down() -> None:
    edges, files = graph()
    upward = [
        f"{files[a].relative_to(ROOT)} -> {files[b].relative_to(ROOT)}"
        for a, targets in edges.items()
        for b in targets
        if layer_of(files[b]) > layer_of(files[a])
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    edges, _ = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_storage_knows_nothing_above_it() -> None:
    edges, _ = graph()
    for name, targets in edges.items():
        if name.startswith("oxen.storage"):
            assert all(t.startswith("oxen.storage") for t in targets), (name, targets)


def test_http_stays_in_the_sync_client_and_the_server() -> None:
    """The core knows nothing of HTTP: aiohttp is imported by the sync client (and its
    direct reads from the object store), the server and the S3 store (aiobotocore's transport) only."""
    _, files = graph()
    users = sorted(
        str(path.relative_to(ROOT))
        for path in files.values()
        if "aiohttp" in {a.split(".")[0] for a in _external_imports(path)}
    )
    allowed = ("oxen/sync/http.py", "oxen/sync/direct_reads.py", "storage/s3.py")
    assert all(u in allowed or u.startswith(("server/", "bench/")) for u in users), users


def test_templates_stay_in_the_web_pages() -> None:
    """HTML is made in server/web/ only: oxen.serving.browsing (what the pages show) knows
    nothing of jinja2, nor of aiohttp."""
    _, files = graph()
    users = sorted(
        str(path.relative_to(ROOT))
        for path in files.values()
        if "jinja2" in {a.split(".")[0] for a in _external_imports(path)}
    )
    assert users and all(u.startswith("server/web/") for u in users), users
    browsing = _external_imports(ROOT / "oxen/serving/browsing.py")
    assert not {m.split(".")[0] for m in browsing} & {"aiohttp", "jinja2"}


def _external_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module)
    return out


def test_local_commands_do_not_load_the_network_or_s3_stacks() -> None:
    """``oxen status`` and the local verbs never import aiohttp or aiobotocore."""
    code = (
        "import sys, oxen.cli.local, oxen.cli.commands, oxen.cli.main\n"
        "print(sorted(m for m in ('aiohttp', 'aiobotocore', 'botocore') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = "import sys, oxen.cli.local\nprint('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
