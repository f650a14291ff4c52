"""The benchmark's goals, each a named constant that the printed table checks its figure against.

A goal is printed with its verdict next to the figure ("2.0× (goal ≥ 3×: not met)") and recorded
in ``bench.json``; the benchmark reports, it never fails: speed depends on the machine, so no
test asserts a goal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """A bound a benchmark figure should reach (``at_least``) or stay within.

    Args:
        bound: the goal's value.
        at_least: True when the figure must be ≥ ``bound``, False when it must be ≤ ``bound``.
        unit: printed after the bound ("×", " s").
    """

    bound: float
    at_least: bool = True
    unit: str = ""

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def describe(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.bound:g}{self.unit}"

    def verdict(self, value: float) -> str:
        """E.g. ``goal ≥ 3×: not met``."""
        return f"goal {self.describe()}: {'met' if self.met(value) else 'not met'}"


# The training loop on cached features keeps most of the floor's speed.
TRAIN_VS_FLOOR_GOAL = Goal(0.8)
# The disk cache is worth building: the cached loop is at least 3× the uncached one.
CACHED_VS_UNCACHED_GOAL = Goal(3.0, unit="×")
# A 1000-episode evaluation of one fold (demo configuration, cached) takes two minutes at most.
EVAL_1000_SECONDS_GOAL = Goal(120.0, at_least=False, unit=" s")
# Batched prediction with one reference gets 90% of the ideal speedup.
PREDICTOR_VS_IDEAL_GOAL = Goal(0.9)

# The goals by the name of their figure (see goal_figures).
GOALS = {
    "train_vs_floor": TRAIN_VS_FLOOR_GOAL,
    "cached_vs_uncached": CACHED_VS_UNCACHED_GOAL,
    "eval_1000_seconds": EVAL_1000_SECONDS_GOAL,
    "predictor_speedup_vs_ideal": PREDICTOR_VS_IDEAL_GOAL,
}


def goal_figures(result: dict) -> dict[str, float]:
    """The figures that have a goal, read from a :func:`~vrpsam.bench.run.benchmark` result."""
    return {
        "train_vs_floor": result["train_vs_floor"],
        "cached_vs_uncached": result["cached_vs_uncached"],
        "eval_1000_seconds": result["eval_1000_seconds"],
        "predictor_speedup_vs_ideal": result["predictor_reuse_speedup"]
        / result["predictor_reuse_ideal"],
    }


def goal_verdicts(result: dict) -> dict[str, dict]:
    """{figure: {"value", "goal", "met"}} for bench.json."""
    return {
        name: {"value": value, "goal": GOALS[name].describe(), "met": GOALS[name].met(value)}
        for name, value in goal_figures(result).items()
    }
