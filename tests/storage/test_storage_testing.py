"""``oxen.storage.testing`` is a suite a third-party backend can import and run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: A third-party backend, outside this project: objects in a dict, nothing but the
#: abstract methods (so get_ranges runs on the base class's merging and read_spans).
MEMORY_STORE = """
from pathlib import Path

from oxen.storage.base import Store, check_key, check_prefix


class MemoryStore(Store):
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    @property
    def url(self) -> str:
        return "memory://"

    async def get(self, key):
        return self.objects.get(check_key(key))

    async def get_range(self, key, start, length):
        if start < 0 or length < 0:
            raise ValueError("negative range")
        data = self.objects.get(check_key(key))
        return None if data is None else data[start : start + length]

    async def put(self, key, data):
        self.objects[check_key(key)] = bytes(data)

    async def put_file(self, key, path, *, move=False):
        await self.put(key, Path(path).read_bytes())
        if move:
            Path(path).unlink()

    async def put_if_absent(self, key, data):
        if check_key(key) in self.objects:
            return False
        self.objects[key] = bytes(data)
        return True

    async def compare_and_swap(self, key, expected, new):
        if self.objects.get(check_key(key)) != expected:
            return False
        self.objects[key] = bytes(new)  # no await in between: atomic on one event loop
        return True

    async def exists_many(self, keys):
        return {k for k in [check_key(k) for k in keys] if k in self.objects}

    async def list(self, prefix=""):
        check_prefix(prefix)
        for key in [k for k in self.objects if k.startswith(prefix)]:
            yield key

    async def size(self, key):
        data = self.objects.get(check_key(key))
        return None if data is None else len(data)

    async def delete(self, key):
        self.objects.pop(check_key(key), None)
"""

TEST_MEMORY_STORE = """
import pytest
from memory_store import MemoryStore
from oxen.storage.testing import StoreTests


class TestMemoryStore(StoreTests):
    store_cls = MemoryStore
    reopen_cls = None  # open_store() does not know memory:// URLs

    @pytest.fixture
    def store_kwargs(self):
        return {}
"""


def test_the_suite_is_importable() -> None:
    from oxen.storage.testing import StoreTests

    assert "store_kwargs" in StoreTests.__doc__  # type: ignore[operator]
    tests = [name for name in vars(StoreTests) if name.startswith("test_")]
    assert len(tests) >= 18
    assert not StoreTests.__name__.startswith("Test")  # pytest does not collect the base itself


def test_a_third_party_backend_runs_the_suite(tmp_path: Path) -> None:
    """In its own project, with pytest-asyncio in its default (strict) mode."""
    (tmp_path / "memory_store.py").write_text(MEMORY_STORE)
    (tmp_path / "test_memory_store.py").write_text(TEST_MEMORY_STORE)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, out
    assert "1 skipped" in summary, out  # test_reopen_by_url
