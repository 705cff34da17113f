"""Charge/discharge voltage hysteresis from two hulls: pure functions.

Charge branch: the hull of the pristine host, traversed from high to low x.
Discharge branch: the hull of the host that keeps the coupled defect formed at the lowest x
reached, re-lithiated at each x (its own relaxed energies, not the pristine ones shifted).
Both branches use V = -[E(x2) - E(x1) - (x2 - x1) E_ion] / ((x2 - x1) z e).

On their common x range: dV(x) = V_charge(x) - V_discharge(x) (piecewise constant), the
average hysteresis is the x-average of dV, and the energy lost per cycle is the area between
the branches, sum dV * dQ, in Wh/kg of the discharged pristine host.

Gated by the TM barriers (``cycles``), a cycle is a sequence of hosts: the first charge runs
on the pristine host down to the onset x and on the migrated host below it; the first discharge
runs on the migrated host up to the x where the TM goes back (if it does) and on the pristine
host above it. The second cycle starts from the state the first discharge ended in: pristine if
the TM went back (the first cycle repeats), migrated otherwise (both branches on the migrated
host: no more loop, a lower voltage, the *voltage fade*). Where both branches end in one state,
the area of a closed cycle is the energy the migration released: E_pristine - E_migrated at the
onset, per formula unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import pairwise

from insertflow.analysis.profile import FARADAY_MAH_PER_MOL, VoltageProfile, VoltageStep
from insertflow.analysis.voltage import ion_charge

DEFINITION = (
    "charge: hull of the pristine host from high to low x; discharge: hull of the host that keeps the "
    "lowest-energy coupled defect (TM migration) formed at the lowest x reached, re-lithiated at each x and "
    "relaxed; dV = V_charge - V_discharge on the common x range"
)


@dataclass
class HysteresisLoop:
    """Both branches and what separates them."""

    charge: list[VoltageStep]
    discharge: list[VoltageStep]
    segments: list[tuple[float, float, float, float]] = field(default_factory=list)  # x_low, x_high, V_ch, V_dis
    average_hysteresis: float = 0.0  # V
    energy_lost: float = 0.0  # Wh/kg per cycle
    x_range: tuple[float, float] | None = None
    coupled: bool = False
    definition: str = DEFINITION

    def dv(self, x: float) -> float:
        """V_charge - V_discharge at ``x`` (V)."""
        for low, high, v_charge, v_discharge in self.segments:
            if low - 1e-9 <= x <= high + 1e-9:
                return v_charge - v_discharge
        raise ValueError(f"x={x:g} is outside the common range {self.x_range}")


def voltage_at(steps: list[VoltageStep], x: float) -> float:
    """The step voltage at ``x`` (the lower step's at a shared boundary is not needed: use midpoints)."""
    for step in steps:
        if step.x_low - 1e-9 <= x <= step.x_high + 1e-9:
            return step.voltage
    raise ValueError(f"x={x:g} is outside the profile")


def hysteresis_loop(charge: VoltageProfile, discharge: VoltageProfile | None) -> HysteresisLoop:
    """The loop between a pristine profile and the profile through the defective host.

    ``discharge`` None means no coupled defect formed: the discharge retraces the charge and
    the hysteresis is zero (not a small negative number from numerical noise).
    """
    if discharge is None:
        low, high = charge.x_range
        segments = [(s.x_low, s.x_high, s.voltage, s.voltage) for s in charge.steps]
        return HysteresisLoop(charge.steps, charge.steps, segments, 0.0, 0.0, (low, high), coupled=False)
    return loop_between(charge.steps, discharge.steps, _charge_per_x(charge))


def _charge_per_x(profile: VoltageProfile) -> float:
    """mAh/g of the discharged pristine host per unit x."""
    return ion_charge(profile.working_ion) * FARADAY_MAH_PER_MOL / profile.discharged_mass


def _span(steps: list[VoltageStep]) -> tuple[float, float]:
    return min(s.x_low for s in steps), max(s.x_high for s in steps)


def loop_between(charge: list[VoltageStep], discharge: list[VoltageStep], charge_per_x: float) -> HysteresisLoop:
    """The loop between two branches (steps), on their common x range; ``charge_per_x`` in mAh/g per unit x."""
    low = max(_span(charge)[0], _span(discharge)[0])
    high = min(_span(charge)[1], _span(discharge)[1])
    if high <= low:
        raise ValueError("the charge and discharge branches share no x range")
    breaks = sorted(
        {low, high}
        | {s.x_low for s in charge + discharge if low < s.x_low < high}
        | {s.x_high for s in charge + discharge if low < s.x_high < high}
    )
    segments = []
    for a, b in pairwise(breaks):
        middle = (a + b) / 2
        segments.append((a, b, voltage_at(charge, middle), voltage_at(discharge, middle)))
    area_x = sum((b - a) * (vc - vd) for a, b, vc, vd in segments)  # V per formula unit
    return HysteresisLoop(
        charge=charge,
        discharge=discharge,
        segments=segments,
        average_hysteresis=area_x / (high - low),
        energy_lost=area_x * charge_per_x,
        x_range=(low, high),
        coupled=True,
    )


def spliced(upper: list[VoltageStep], lower: list[VoltageStep], at: float) -> list[VoltageStep]:
    """``lower``'s steps below x = ``at`` and ``upper``'s above it; a step across ``at`` is cut there.

    ``at`` is clipped to the top of ``lower`` (a migrated host whose blocked site caps its x).
    """
    at = min(at, _span(lower)[1])
    steps = []
    for step in lower:
        if step.x_low < at - 1e-9:
            steps.append(_cut(step, step.x_low, min(step.x_high, at)))
    for step in upper:
        if step.x_high > at + 1e-9:
            steps.append(_cut(step, max(step.x_low, at), step.x_high))
    return steps


def _cut(step: VoltageStep, low: float, high: float) -> VoltageStep:
    if (low, high) == (step.x_low, step.x_high):
        return step
    share = (high - low) / (step.x_high - step.x_low)
    return replace(step, x_low=low, x_high=high, capacity_grav=step.capacity_grav * share)


def average_voltage(steps: list[VoltageStep], low: float, high: float) -> float:
    """The x-average of a branch's voltage over [low, high] (V)."""
    covered = [(max(s.x_low, low), min(s.x_high, high), s.voltage) for s in steps]
    width = sum(b - a for a, b, _ in covered if b > a)
    return sum((b - a) * v for a, b, v in covered if b > a) / width


@dataclass
class Cycles:
    """The first and second cycles of a host whose TM migrates on charge, and the fade between them."""

    first: HysteresisLoop
    second: HysteresisLoop
    voltage_fade: float  # V: first-charge average minus second-charge average on their common x range
    onset_x: float
    returns_at: float | None


def cycles(
    pristine: VoltageProfile, migrated: VoltageProfile, onset_x: float, returns_at: float | None = None
) -> Cycles:
    """Two cycles through the hosts the TM leaves behind (see the module docstring).

    ``onset_x``: the TM migrates on charge at this x; ``returns_at``: on discharge it goes back at
    this x (None: it stays). Below ``onset_x`` the charge takes the migrated host's steps where it
    has them (the pristine ones below its lowest x).
    """
    per_x = _charge_per_x(pristine)
    migrated_low = _span(migrated.steps)[0]
    lower = migrated.steps
    if migrated_low > pristine.x_range[0] + 1e-9:  # below the migrated host's lowest x: pristine
        lower = spliced(migrated.steps, pristine.steps, migrated_low)
    first_charge = spliced(pristine.steps, lower, onset_x)
    first_discharge = migrated.steps if returns_at is None else spliced(pristine.steps, migrated.steps, returns_at)
    first = loop_between(first_charge, first_discharge, per_x)
    if returns_at is None:  # the second cycle runs on the migrated host both ways
        second = loop_between(migrated.steps, migrated.steps, per_x)
        second = replace(second, average_hysteresis=0.0, energy_lost=0.0, coupled=False)
    else:
        second = first
    low = max(_span(first_charge)[0], _span(second.charge)[0])
    high = min(_span(first_charge)[1], _span(second.charge)[1])
    fade = average_voltage(first_charge, low, high) - average_voltage(second.charge, low, high)
    return Cycles(first, second, fade, onset_x, returns_at)
