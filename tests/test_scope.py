"""What a partial clone holds: the scope's rules, and its record in the database."""

from __future__ import annotations

from oxen.worktree.scope import WHOLE, Partial


def test_a_whole_clone_holds_and_reaches_everything() -> None:
    assert WHOLE.holds("a/b.txt") and WHOLE.reaches("a/") and not WHOLE.is_partial
    assert WHOLE.widened(["x"]) == WHOLE


def test_a_subtree_holds_below_it_and_walks_reach_the_way_down() -> None:
    p = Partial((), all_trees=False).widened(["images/train"])
    assert p.paths == ("images/train",) and not p.all_trees
    assert p.holds("images/train/a.png") and p.holds("images/train")
    assert not p.holds("images/training.png") and not p.holds("images/test/a.png")
    assert p.reaches("") and p.reaches("images/") and p.reaches("images/train/x/")
    assert not p.reaches("images/test/") and not p.reaches("labels/")


def test_widening_merges_and_narrowing_drops() -> None:
    p = Partial(()).widened(["a/b", "c"])
    assert p.paths == ("a/b", "c")
    assert p.widened(["a"]).paths == ("a", "c")  # a folder above replaces what it covers
    assert p.widened(["a/b/x"]) == p  # already held
    assert p.widened([""]).paths is None
    assert p.narrowed(["c"]).paths == ("a/b",)
    assert p.narrowed(["a"]).paths == ("c",)  # what is below a dropped folder goes too
    assert Partial(()).is_partial and Partial(()).describe() is not None


def test_the_record_round_trips() -> None:
    p = Partial(("x", "y/z"), shallow=[b"\x01" * 32], all_trees=False)
    assert Partial.decode(p.encode()) == p
    assert Partial.decode(None) == WHOLE
    assert "depth" in (Partial(None, shallow=[b"\x02" * 32]).describe() or "")
