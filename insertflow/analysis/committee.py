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
* Defect energy: per configuration every member computed, at each member's own chemical-potential
  limit (its own competing phases). It is *favourable* (below zero) or *unfavourable* for the
  committee only when every member puts it on the same side; otherwise *undecided*. Concentrations
  go as exp(-E/kT), so the members' spread is also given in decades of concentration.
* Barrier: per TM migration or working-ion hop every member resolved. It is *within* or *beyond*
  the kinetic limit for the committee only when every member agrees; the rate spread is
  exp(range/kT), the factor between the fastest and the slowest member.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np

#: Boltzmann constant, eV/K.
K_B = 8.617333262e-5

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


def _sides(values: list[float], below: str, above: str) -> str:
    """``below`` when every value is below zero, ``above`` when every one is above, else ``undecided``."""
    if all(v < 0 for v in values):
        return below
    if all(v > 0 for v in values):
        return above
    return "undecided"


def _common(rows: dict[str, dict[str, dict]], field: str) -> list[str]:
    """Labels every member has a value of ``field`` for, in the first member's order."""
    members = list(rows)
    if not members:
        return []
    first = rows[members[0]]
    return [
        label for label in first if all(label in rows[m] and rows[m][label].get(field) is not None for m in members)
    ]


def defect_energies(defects: dict[str, dict[str, dict]]) -> list[dict]:
    """Per defect configuration every member computed: energy per member, mean, spread, favourable or not.

    ``defects``: member -> label -> the member's defect row (``kind``, ``x``, ``energy``, and
    ``concentration_operating`` when it has one).
    """
    members = list(defects)
    rows = []
    for label in _common(defects, "energy"):
        values = [float(defects[m][label]["energy"]) for m in members]
        stats = mean_and_spread(values)
        first = defects[members[0]][label]
        row = {
            "label": label,
            "kind": first["kind"],
            "x": first["x"],
            "energy": dict(zip(members, stats["values"], strict=True)),
            "mean": stats["mean"],
            "spread": stats["spread"],
            "verdict": _sides(values, "favourable", "unfavourable"),
        }
        concentrations = [defects[m][label].get("concentration_operating") for m in members]
        if all(c is not None and c > 0 for c in concentrations):
            row["concentration_decades"] = math.log10(max(concentrations) / min(concentrations))
        rows.append(row)
    return rows


def lowest_per_kind(defects: dict[str, dict[str, dict]]) -> list[dict]:
    """Per defect kind and x: each member's lowest configuration, and whether the members pick the same one."""
    picks: dict[tuple[str, float], dict[str, tuple[str, float]]] = {}
    for member, rows in defects.items():
        for label, row in rows.items():
            if row.get("energy") is None:
                continue
            key = (row["kind"], round(float(row["x"]), 6))
            best = picks.setdefault(key, {}).get(member)
            if best is None or row["energy"] < best[1]:
                picks[key][member] = (label, float(row["energy"]))
    result = []
    for (kind, x), chosen in sorted(picks.items()):
        if len(chosen) < len(defects):
            continue
        labels = {label for label, _ in chosen.values()}
        result.append(
            {
                "kind": kind,
                "x": x,
                "lowest": {member: label for member, (label, _) in chosen.items()},
                "same_configuration": len(labels) == 1,
            }
        )
    return result


def barrier_spreads(
    barriers: dict[str, dict[str, dict]], kinetic_limit: float | None, temperature: float
) -> list[dict]:
    """Per path every member resolved: forward barrier per member, mean, spread, and the committee's kinetic verdict.

    ``barriers``: member -> label -> row with ``x`` and ``forward_barrier`` (eV; ``reverse_barrier`` optional).
    The verdict is ``within`` / ``beyond`` the kinetic limit when every member agrees, else ``undecided``.
    """
    members = list(barriers)
    rows = []
    for label in _common(barriers, "forward_barrier"):
        values = [float(barriers[m][label]["forward_barrier"]) for m in members]
        stats = mean_and_spread(values)
        row = {
            "label": label,
            "x": barriers[members[0]][label].get("x"),
            "forward_barrier": dict(zip(members, stats["values"], strict=True)),
            "mean": stats["mean"],
            "spread": stats["spread"],
            "rate_factor": math.exp((max(values) - min(values)) / (K_B * temperature)),
        }
        reverse = [barriers[m][label].get("reverse_barrier") for m in members]
        if all(r is not None for r in reverse):
            row["reverse_barrier"] = mean_and_spread([float(r) for r in reverse])
        if kinetic_limit is not None:
            row["kinetic_limit"] = kinetic_limit
            row["verdict"] = _sides([v - kinetic_limit for v in values], "within", "beyond")
        rows.append(row)
    return rows
