"""Defect concentrations from formation energies and site multiplicities (pure functions).

A point defect can sit on ``m`` equivalent sites per formula unit; each such site is either
defective or not, so in the dilute, non-interacting limit

    c = m / (1 + exp(E / kT))      per formula unit,

which is the Boltzmann ``m exp(-E/kT)`` for E >> kT and saturates at ``m`` (every site taken)
when E < 0. Concentrations of point-defect variants on different sites add.

A moved TM (migration, Li/TM exchange) is different: each of the ``n`` TMs per formula unit is
in one state only, at home or in one of its hops (``m_i`` per formula unit over all TMs), so

    c = n Z / (1 + Z),   Z = sum_i (m_i / n) exp(-E_i / kT),

which cannot exceed the ``n`` TMs there are (``exclusive_concentration``).

Two temperatures matter for an electrode: the **synthesis** temperature, at which the as-made
(fully inserted) host equilibrates and whose population is then quenched; and the
**operating** temperature, at which a defect that can still equilibrate follows the state of
charge. Whether it can (kinetics) is the migration-barrier question, not decided here.
"""

from __future__ import annotations

import math

#: Boltzmann constant, eV/K.
BOLTZMANN = 8.617333262e-5
DEFAULT_SYNTHESIS_TEMPERATURE = 1000.0
DEFAULT_OPERATING_TEMPERATURE = 300.0


def concentration(energy: float, multiplicity: float, temperature: float) -> float:
    """Defects per formula unit: ``multiplicity / (1 + exp(energy / kT))`` (eV, per f.u., K)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive (got {temperature} K)")
    if multiplicity < 0:
        raise ValueError(f"multiplicity must be >= 0 (got {multiplicity})")
    exponent = energy / (BOLTZMANN * temperature)
    if exponent > 700:  # exp overflows; the Boltzmann tail is exact there
        return multiplicity * math.exp(-exponent)
    return multiplicity / (1.0 + math.exp(exponent))


def exclusive_concentration(variants: list[tuple[float, float]], hosts: float, temperature: float) -> float:
    """Moved TMs per formula unit: ``hosts`` Z / (1 + Z) over (energy, multiplicity per f.u.) variants."""
    if hosts <= 0:
        raise ValueError(f"hosts must be positive (got {hosts})")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive (got {temperature} K)")
    kt = BOLTZMANN * temperature
    exponents = [math.log(m / hosts) - e / kt for e, m in variants if m > 0]
    if not exponents:
        return 0.0
    top = max(exponents)
    if top > 700:  # Z overflows: every TM has moved
        return hosts
    z = sum(math.exp(x) for x in exponents)
    return hosts * z / (1.0 + z)


def total_concentration(variants: list[tuple[float, float]], temperature: float) -> float:
    """Sum over (energy, multiplicity) site variants of one kind at one x."""
    return sum(concentration(energy, multiplicity, temperature) for energy, multiplicity in variants)


def decades(high: float, low: float) -> float:
    """log10(high / low), infinite when ``low`` is zero (a defect absent at one x and present at another)."""
    if high <= 0:
        return 0.0
    if low <= 0:
        return math.inf
    return math.log10(high / low)
