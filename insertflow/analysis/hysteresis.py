"""Charge/discharge voltage hysteresis from two hulls: pure functions.

Charge branch: the hull of the pristine host, traversed from high to low x.
Discharge branch: the hull of the host that keeps the coupled defect formed at the lowest x
reached, re-lithiated at each x (its own relaxed energies, not the pristine ones shifted).
Both branches use V = -[E(x2) - E(x1) - (x2 - x1) E_ion] / ((x2 - x1) z e).

On their common x range: dV(x) = V_charge(x) - V_discharge(x) (piecewise constant), the
average hysteresis is the x-average of dV, and the energy lost per cycle is the area between
the branches, sum dV * dQ, in Wh/kg of the discharged pristine host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    low = max(charge.x_range[0], discharge.x_range[0])
    high = min(charge.x_range[1], discharge.x_range[1])
    if high <= low:
        raise ValueError("the charge and discharge branches share no x range")
    breaks = sorted(
        {low, high}
        | {s.x_low for s in charge.steps + discharge.steps if low < s.x_low < high}
        | {s.x_high for s in charge.steps + discharge.steps if low < s.x_high < high}
    )
    segments = []
    for a, b in pairwise(breaks):
        middle = (a + b) / 2
        segments.append((a, b, voltage_at(charge.steps, middle), voltage_at(discharge.steps, middle)))
    area_x = sum((b - a) * (vc - vd) for a, b, vc, vd in segments)  # V per formula unit
    charge_per_x = ion_charge(charge.working_ion) * FARADAY_MAH_PER_MOL / charge.discharged_mass  # mAh/g per unit x
    return HysteresisLoop(
        charge=charge.steps,
        discharge=discharge.steps,
        segments=segments,
        average_hysteresis=area_x / (high - low),
        energy_lost=area_x * charge_per_x,
        x_range=(low, high),
        coupled=True,
    )
