"""Oxidation states implied by magnetic moments (ML potentials predict moments, not charges).

Spin-only moments (muB) of the common states in oxides: Co3+ is low spin (0), Co4+ low spin (1);
Ni3+ low spin (1); Mn, Fe and Cr high spin. The implied state is the one with the nearest
expected moment (CHGNet measured here: Co 0.06 muB in LiCoO2 -> Co3+, 1.1 muB in CoO2 -> Co4+).
"""

from __future__ import annotations

from collections import Counter

EXPECTED_MOMENTS: dict[str, dict[int, float]] = {
    "Co": {2: 3.0, 3: 0.0, 4: 1.0},
    "Ni": {2: 2.0, 3: 1.0, 4: 0.0},
    "Mn": {2: 5.0, 3: 4.0, 4: 3.0, 5: 2.0},
    "Fe": {2: 4.0, 3: 5.0},
    "Cr": {3: 3.0, 4: 2.0, 6: 0.0},
    "V": {3: 2.0, 4: 1.0, 5: 0.0},
    "Ti": {3: 1.0, 4: 0.0},
    "Cu": {1: 0.0, 2: 1.0},
}


def implied_oxidation_state(element: str, moment: float) -> int | None:
    """The oxidation state whose spin-only moment is nearest ``|moment|`` (None if unknown)."""
    table = EXPECTED_MOMENTS.get(element)
    if not table:
        return None
    return min(table, key=lambda state: (abs(table[state] - abs(moment)), state))


def oxidation_census(symbols: list[str], moments: list[float], elements: list[str]) -> dict[str, dict[str, int]]:
    """{element: {"+3": n, "+4": m}} over the sites of ``elements``."""
    census: dict[str, Counter] = {el: Counter() for el in elements}
    for symbol, moment in zip(symbols, moments, strict=True):
        if symbol in census:
            state = implied_oxidation_state(symbol, moment)
            census[symbol]["?" if state is None else f"+{state}"] += 1
    return {el: dict(sorted(c.items())) for el, c in census.items()}
