"""A committee of calculators on one study: means, spreads and what the spread leaves undecided. Pure functions.

Each member is the same study (host, orderings, settings) run with another calculator. The spread
of a quantity is the population standard deviation over the members (half the difference for two).
It measures how much the models disagree, not how far any of them is from experiment.

* Voltage: the members' profiles are cut at every step edge of any member, on the x range all
  cover; each segment gets the members' voltages, their mean and spread. A step between two
  segments is *resolved* when the jump of the mean exceeds the sum of the two spreads.
* Hull: an ordering every member relaxed gets each member's energy above hull (eV per framework
  unit), their mean and spread. It is *on the hull* when every member puts it there, and *possibly
  on the hull* when some do not but its mean lies within its spread of the hull.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

#: Energies above hull this close to zero (eV per framework unit) count as on the hull.
HULL_ZERO = 1e-6


def mean_and_spread(values: list[float]) -> dict:
    """``{"mean", "spread", "values"}``: the spread is the population standard deviation."""
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "spread": float(array.std()), "values": [float(v) for v in values]}


def _voltage_at(steps: list[dict], x: float) -> float | None:
    for step in steps:
        if step["x_low"] - 1e-9 <= x <= step["x_high"] + 1e-9:
            return float(step["voltage"])
    return None


def voltage_segments(profiles: dict[str, list[dict]]) -> list[dict]:
    """The members' steps cut at every edge on their common x range: x_low, x_high, mean, spread, per member."""
    members = {name: steps for name, steps in profiles.items() if steps}
    if len(members) < len(profiles) or not members:
        return []
    low = max(min(s["x_low"] for s in steps) for steps in members.values())
    high = min(max(s["x_high"] for s in steps) for steps in members.values())
    if high <= low:
        return []
    edges = {low, high}
    for steps in members.values():
        edges |= {e for s in steps for e in (s["x_low"], s["x_high"]) if low < e < high}
    segments = []
    for a, b in pairwise(sorted(edges)):
        middle = (a + b) / 2
        voltages = {name: _voltage_at(steps, middle) for name, steps in members.items()}
        stats = mean_and_spread(list(voltages.values()))
        segments.append(
            {"x_low": a, "x_high": b, "mean": stats["mean"], "spread": stats["spread"], "members": voltages}
        )
    return segments


def step_verdicts(segments: list[dict]) -> list[dict]:
    """At each edge between two segments: the jump of the mean voltage, the spreads, and whether it is resolved."""
    verdicts = []
    for below, above in pairwise(segments):  # low x first: the voltage falls as x rises
        jump = below["mean"] - above["mean"]
        allowed = below["spread"] + above["spread"]
        if abs(jump) < 1e-9:
            continue
        verdicts.append({"x": above["x_low"], "jump": jump, "spread": allowed, "resolved": abs(jump) > allowed})
    return verdicts


def hull_membership(orderings: dict[str, dict[str, dict]]) -> list[dict]:
    """Per ordering relaxed by every member: energy above hull per member, mean, spread, on / possibly on hull.

    ``orderings``: member -> label -> the member's ordering row (``x``, ``e_above_hull``, ``on_hull``).
    """
    members = list(orderings)
    common = set.intersection(*(set(rows) for rows in orderings.values())) if orderings else set()
    rows = []
    for label in sorted(common, key=lambda name: (orderings[members[0]][name]["x"], name)):
        values = [orderings[m][label].get("e_above_hull") for m in members]
        if any(v is None for v in values):
            continue
        stats = mean_and_spread(values)
        pairs = zip(members, values, strict=True)
        on_hull = [bool(orderings[m][label].get("on_hull")) or v <= HULL_ZERO for m, v in pairs]
        rows.append(
            {
                "label": label,
                "x": orderings[members[0]][label]["x"],
                "e_above_hull": dict(zip(members, stats["values"], strict=True)),
                "mean": stats["mean"],
                "spread": stats["spread"],
                "on_hull": all(on_hull),
                "possibly_on_hull": not all(on_hull) and stats["mean"] <= stats["spread"] + HULL_ZERO,
                "on_hull_for": [m for m, flag in zip(members, on_hull, strict=True) if flag],
            }
        )
    return rows
