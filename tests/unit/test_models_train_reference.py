"""The shipped head's crop threshold search (`train_reference.lowest_threshold`) and the warm-up steps'
thresholds (`stricter_when_shorter`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hazardwatch.models.train_reference import lowest_threshold, stricter_when_shorter


def _counting(edge: float, over: int = 9, under: int = 2) -> tuple[list[float], Callable[[float], int]]:
    calls: list[float] = []

    def extra_fp(threshold: float) -> int:
        calls.append(threshold)
        return over if threshold < edge else under

    return calls, extra_fp


@pytest.mark.parametrize("edge", [0.3501, 0.405, 0.44, 0.7777])
def test_it_finds_the_lowest_passing_threshold_within_its_precision(edge: float) -> None:
    calls, extra_fp = _counting(edge)
    found = lowest_threshold(extra_fp, 0.32, allowed=2)
    assert edge <= found <= edge + 0.01
    assert len(calls) <= 20  # each call runs the predictor over every validation camera: few of them


def test_a_start_that_already_passes_is_kept() -> None:
    calls, extra_fp = _counting(0.2)
    assert lowest_threshold(extra_fp, 0.32, allowed=2) == 0.32
    assert calls == [0.32]


def test_it_never_goes_over_0_999() -> None:
    calls, extra_fp = _counting(2.0)
    assert lowest_threshold(extra_fp, 0.32, allowed=2) == 0.999
    assert max(calls) <= 0.999


def test_allowed_counts_false_positives_over_the_view() -> None:
    _, extra_fp = _counting(0.5, over=3, under=0)
    assert lowest_threshold(extra_fp, 0.32, allowed=3) == 0.32
    assert 0.5 <= lowest_threshold(extra_fp, 0.32, allowed=2) <= 0.51


@pytest.mark.parametrize(
    ("picks", "want"),
    [
        ([0.7403, 0.6359, 0.463, 0.4702], [0.7403, 0.6359, 0.4702, 0.4702]),  # 1.10.0's split: 8 looks under 12
        ([0.5, 0.6, 0.4, 0.3], [0.6, 0.6, 0.4, 0.3]),
        ([0.9, 0.8, 0.7], [0.9, 0.8, 0.7]),  # already in order: unchanged
        ([], []),
    ],
)
def test_a_shorter_reference_is_never_judged_more_leniently(picks: list[float], want: list[float]) -> None:
    got = stricter_when_shorter(picks)
    assert got == want
    assert got == sorted(got, reverse=True) and all(g >= p for g, p in zip(got, picks, strict=True))
