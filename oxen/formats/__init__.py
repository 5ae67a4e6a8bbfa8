"""Formats: bytes in, bytes out, no I/O (ids, merkle nodes, the pack layout, ref names)."""
