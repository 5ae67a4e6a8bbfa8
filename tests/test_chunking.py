import os
import random

import pytest

from oxen.config import ChunkingConfig
from oxen.formats.ids import file_id, hash_bytes
from oxen.worktree.chunking import Chunker, FileStream


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    return Chunker(ChunkingConfig())


def _stream_chunks(chunker: Chunker, path: str, block: int) -> list[tuple[bytes, int]]:
    stream = chunker.open_stream(path, block)
    out = []
    while (b := stream.next_block()) is not None:
        for c in b.chunks:
            assert hash_bytes(b.data[c.offset : c.offset + c.length]) == c.id
            out.append((c.id, c.length))
    return out


@pytest.mark.parametrize("block", [300 * 1024, 1 << 20, 3 << 20 | 12345])
def test_streaming_equals_whole_buffer(chunker: Chunker, tmp_path, block: int) -> None:
    data = random.Random(7).randbytes(9 * 1024 * 1024 + 333)
    path = tmp_path / "f"
    path.write_bytes(data)
    whole = [(c.id, c.length) for c in chunker.cut(data)]
    assert _stream_chunks(chunker, str(path), block) == whole
    assert sum(n for _, n in whole) == len(data)


def test_chunk_sizes_respect_bounds(chunker: Chunker) -> None:
    data = os.urandom(8 * 1024 * 1024)
    sizes = [c.length for c in chunker.cut(data)]
    assert all(8 * 1024 <= s <= 128 * 1024 for s in sizes[:-1])
    assert 40 * 1024 < sum(sizes) / len(sizes) < 140 * 1024


def test_small_file_is_one_chunk_whose_id_is_the_file_id(chunker: Chunker, tmp_path) -> None:
    data = b"x" * 5000
    chunks = chunker.cut(data)
    assert len(chunks) == 1 and chunks[0].id == hash_bytes(data)
    path = tmp_path / "small"
    path.write_bytes(data)
    stream = chunker.open_stream(str(path))
    block = stream.next_block()
    assert block is not None and [c.id for c in block.chunks] == [hash_bytes(data)]
    assert stream.next_block() is None
    assert stream.file_id == hash_bytes(data) and stream.size == len(data)


def test_empty_file(chunker: Chunker, tmp_path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    stream = chunker.open_stream(str(path))
    assert stream.next_block() is None
    assert stream.file_id == hash_bytes(b"")


def test_insert_in_the_middle_keeps_most_chunks(chunker: Chunker) -> None:
    rng = random.Random(3)
    data = rng.randbytes(4 * 1024 * 1024)
    edited = data[:2_000_000] + b"inserted bytes" + data[2_000_000:]
    before = {c.id for c in chunker.cut(data)}
    after = [c.id for c in chunker.cut(edited)]
    new = [c for c in after if c not in before]
    assert len(new) <= 3


def _segment_starts(monkeypatch) -> list[int]:
    starts: list[int] = []
    submit = FileStream._submit

    def recording(self, start, own_end, buf=None):
        starts.append(start)
        return submit(self, start, own_end, buf)

    monkeypatch.setattr(FileStream, "_submit", recording)
    return starts


@pytest.mark.parametrize("extra", [0, 1, 4095, 300 * 1024 - 1])
def test_parallel_segments_equal_whole_buffer_at_every_edge(chunker, tmp_path, extra) -> None:
    segment = 300 * 1024
    data = random.Random(extra).randbytes(7 * segment + extra)
    path = tmp_path / "f"
    path.write_bytes(data)
    whole = [(c.id, c.length) for c in chunker.cut(data)]
    assert _stream_chunks(chunker, str(path), segment) == whole


def test_segments_that_never_meet_are_cut_again(chunker, tmp_path, monkeypatch) -> None:
    """Zeros are cut every max_size bytes from wherever a chunk starts, so a segment
    starting off that grid never meets the true cuts: it must be cut again from them."""
    rng = random.Random(5)
    data = rng.randbytes(300_007) + bytes(3 * 1024 * 1024) + rng.randbytes(500_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    starts = _segment_starts(monkeypatch)
    segment = 512 * 1024
    whole = [(c.id, c.length) for c in chunker.cut(data)]
    assert _stream_chunks(chunker, str(path), segment) == whole
    assert any(s % segment for s in starts)  # some segment was cut again off the grid


def test_stream_file_id_and_size(chunker, tmp_path) -> None:
    data = random.Random(9).randbytes(5 * 1024 * 1024 + 17)
    path = tmp_path / "f"
    path.write_bytes(data)
    stream = chunker.open_stream(str(path), 1 << 20)
    blocks = []
    while (b := stream.next_block()) is not None:
        blocks.append(bytes(b.data))
    assert b"".join(blocks) == data
    whole = [c.id for c in chunker.cut(data)]
    assert stream.file_id == file_id(whole) and stream.size == len(data)
    # what status and checkout compute for a file on disk, small or streamed
    assert chunker.file_id_of(str(path)) == stream.file_id
    assert chunker.file_id_of(str(path), whole_below=1 << 30) == stream.file_id


def test_a_file_that_shrinks_while_cut_ends_cleanly(chunker, tmp_path) -> None:
    """The sizes planned from fstat no longer hold: the stream ends at the new end and
    leaves no reading thread behind."""
    path = tmp_path / "f"
    path.write_bytes(random.Random(2).randbytes(6 * 1024 * 1024))
    stream = chunker.open_stream(str(path), 512 * 1024)
    first = stream.next_block()
    assert first is not None
    with open(path, "r+b") as f:
        f.truncate(1024 * 1024 + 77)
    while stream.next_block() is not None:
        pass
    stream.close()
    assert stream._pool is None and stream.size <= 6 * 1024 * 1024
