"""The repository format version, and the one line a repository of another gets.

No imports beyond the error class: ``status`` checks the version without loading the
config machinery (tomllib, dataclasses and typing cost it ~35 ms of its ~150)."""

from __future__ import annotations

import re

from oxen.errors import FormatError

# 2: ids are 32-byte BLAKE3 (1 was xxh3-128, which anyone can collide on purpose)
FORMAT_VERSION = 2
_FORMAT_LINE = re.compile(r"^\[core\][^\[]*?^\s*format\s*=\s*(-?\d+)\s*$", re.M | re.S)


def check_format(found: int, root: object) -> None:
    if found == FORMAT_VERSION:
        return
    if found < FORMAT_VERSION:
        raise FormatError(
            f"the repository at {root} is in format {found} (ids are xxh3-128, not collision "
            f"resistant); this oxen reads format {FORMAT_VERSION} only: keep oxen 0.1 for it, "
            "or start a new repository (oxen init) and add its files"
        )
    raise FormatError(
        f"the repository at {root} is in format {found}, newer than this oxen reads "
        f"({FORMAT_VERSION}): upgrade oxen"
    )


def format_in(config_text: str) -> int:
    """``core.format`` of a config file's text, found without parsing all of it (a config
    that names none is of this version, as the full loader reads it)."""
    match = _FORMAT_LINE.search(config_text)
    return int(match.group(1)) if match else FORMAT_VERSION
