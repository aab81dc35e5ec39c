"""Interleaved timing: every candidate each round, the warm-up round uncounted, medians returned."""

import time

import pytest

from pytorch_in_action.timing import interleaved_medians


def test_rounds_interleave_and_the_first_is_not_counted():
    order = []
    medians = interleaved_medians({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=3,
                                  before=lambda: order.append("-"))
    assert order == ["-", "a", "-", "b"] * 3  # `before` ahead of every call, candidates alternating
    assert set(medians) == {"a", "b"} and all(t >= 0 for t in medians.values())
    calls = []
    slow_first = lambda: calls.append(1) or (time.sleep(0.05) if len(calls) == 1 else None)  # noqa: E731
    assert interleaved_medians({"x": slow_first}, rounds=2)["x"] < 0.01  # only the warm-up call was slow


def test_a_slower_candidate_has_the_larger_median():
    medians = interleaved_medians({"fast": lambda: None, "slow": lambda: time.sleep(0.002)}, rounds=3)
    assert medians["slow"] > medians["fast"]


def test_one_round_is_refused():
    with pytest.raises(ValueError, match="warm-up"):
        interleaved_medians({"a": lambda: None}, rounds=1)
