"""Symmetry-distinct working-ion/vacancy orderings at every x, ranked by Ewald energy.

icet's ``enumerate_structures`` does the enumeration (derivative superstructures of the
primitive cell up to ``max_size`` cells, or every ordering in one fixed supercell; a
vacancy is the species ``X``). pymatgen's ``EwaldSummation`` ranks the orderings of each
composition, with the charge of the removed ions taken up evenly by the redox elements.

``x`` is the number of working ions per framework formula unit (LiCoO2: Li_x CoO2, x in
[0, 1]; Li2MnO3 with only the Li layer active: x in [0.5, 2] per MnO3).
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from monty.json import MSONable
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from insertflow import progress
from insertflow.analysis.cluster_expansion import VACANCY, without_vacancies
from insertflow.analysis.voltage import framework_unit, ion_charge, units_of
from insertflow.errors import RecipeError
from insertflow.hosts import Host
from insertflow.sampling.sublattices import active_site_indices

STAGE = "enumeration"
#: Requested x values match reachable ones to this tolerance (ions per framework unit).
X_TOLERANCE = 2e-3


@dataclass
class OrderingSettings(MSONable):
    """How orderings are enumerated and how many survive the Ewald ranking."""

    max_size: int = 4  # supercells of 1..max_size primitive cells
    supercell: list[list[int]] | None = None  # instead: every ordering in this one supercell of the host cell
    active_sites: list[str] | None = None  # Wyckoff labels of the sublattices to vary; None = all
    x: list[float] | None = None  # only these x (end members are always kept); None = all reachable
    ewald_keep: int = 8  # lowest-Ewald orderings kept per x
    max_active_sites: int = 18  # refuse cells whose 2^n labelings would take icet minutes
    max_enumerated: int = 50_000  # stop enumerating larger cells beyond this many structures
    section: str = "levels"  # the recipe section these settings come from (named in error messages)
    keep_end_members: bool = True  # with x given: also the lowest and highest x (a profile needs them)

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise RecipeError(f"{self.section}.max_size must be at least 1 (got {self.max_size})")
        if self.ewald_keep < 1:
            raise RecipeError(f"{self.section}.ewald_keep must be at least 1 (got {self.ewald_keep})")
        if self.supercell is not None:
            matrix = np.array(self.supercell)
            if matrix.shape == (3,):
                matrix = np.diag(matrix)
            if matrix.shape != (3, 3) or not np.allclose(matrix, np.round(matrix)):
                raise RecipeError(
                    f"{self.section}.supercell must be 3 integers or a 3x3 integer matrix (got {self.supercell})"
                )
            if round(abs(np.linalg.det(matrix))) < 1:
                raise RecipeError(f"{self.section}.supercell {self.supercell} is singular")
            self.supercell = np.round(matrix).astype(int).tolist()


@dataclass
class Ordering(MSONable):
    """One working-ion/vacancy ordering (vacancies removed from ``structure``)."""

    structure: Structure
    x: float
    cells: int  # size of its supercell, in enumeration cells
    ewald_per_fu: float  # eV per framework formula unit
    ewald_rank: int  # 1 = lowest Ewald energy at this x
    formula_units: int = 1  # framework formula units in ``structure``
    label: str = ""


@dataclass
class EnumerationSummary(MSONable):
    """What the enumeration saw and kept, per x (keys are ``f"{x:.4f}"``)."""

    cell: str
    active_sites: list[str]
    active_per_cell: int
    sizes: list[int]
    enumerated: dict[str, int] = field(default_factory=dict)
    per_size: dict[str, int] = field(default_factory=dict)  # distinct orderings icet found per cell size
    kept: dict[str, int] = field(default_factory=dict)
    duplicates_removed: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total_enumerated(self) -> int:
        """Structures icet enumerated over all x."""
        return sum(self.enumerated.values())

    @property
    def total_kept(self) -> int:
        """Structures kept after Ewald ranking and dedupe."""
        return sum(self.kept.values())


def x_key(x: float) -> str:
    """Stable text key of an x value."""
    return f"{x:.4f}"


def ions_per_formula_unit(structure: Structure, framework: Composition, working_ion: str) -> float:
    """X of ``structure`` = working ions per framework formula unit (see ``framework_unit``)."""
    units = units_of(structure.composition, framework, working_ion)
    return structure.composition.element_composition[working_ion] / units


def select_orderings(
    host: Host,
    settings: OrderingSettings,
    active_indices: list[int] | None = None,
    only: Callable[[float], bool] | None = None,
) -> tuple[list[Ordering], EnumerationSummary]:
    """Enumerate, rank by Ewald energy and keep the lowest ``ewald_keep`` distinct orderings per x.

    ``active_indices`` (with a fixed ``supercell``) names the sites that may empty directly,
    for low-symmetry hosts where Wyckoff labels do not single them out (a defective cell);
    ``only`` keeps the x values it accepts (Ewald sums are computed for those alone).
    """
    start = time.perf_counter()
    base, sizes, cell_text = _enumeration_cell(host, settings)
    if active_indices is not None:
        active = sorted(active_indices)
    else:
        active = active_site_indices(
            base, host.working_ion, settings.active_sites, where=f"host '{host.name}'", section=settings.section
        )
    summary = EnumerationSummary(
        cell=cell_text,
        active_sites=settings.active_sites or ["all"],
        active_per_cell=len(active),
        sizes=[],
    )
    framework = framework_unit(host.formula, host.working_ion)
    if settings.x is not None:  # refuse an unreachable x before minutes of enumeration, not after
        reachable = _reachable_x(base, active, sizes, framework, host.working_ion)
        _wanted_keys(settings.x, {x_key(x): x for x in reachable}, settings.section, settings.keep_end_members)
    charges = _ewald_charges(host)
    found: dict[str, list[tuple[int, Structure]]] = defaultdict(list)  # (cells, structure) per x
    xs: dict[str, float] = {}
    for cells, structure in _enumerate(base, active, sizes, settings, summary, host.working_ion):
        x = ions_per_formula_unit(structure, framework, host.working_ion)
        key = x_key(x)
        xs[key] = x
        found[key].append((cells, structure))
    summary.enumerated = {key: len(found[key]) for key in sorted(found, key=float)}

    wanted = _wanted_keys(settings.x, xs, settings.section, settings.keep_end_members)
    if only is not None:
        wanted = [key for key in wanted if only(xs[key])]
    orderings: list[Ordering] = []
    for number, key in enumerate(sorted(wanted, key=float), start=1):
        progress.emit(STAGE, f"Ewald x={float(key):.3f} ({number} of {len(wanted)})", f"{len(found[key])} orderings...")
        by_x = [(_ewald_per_fu(structure, charges, host), cells, structure) for cells, structure in found[key]]
        ranked = sorted(by_x, key=lambda item: (item[0], item[1]))
        kept, duplicates = _distinct_lowest(ranked, settings.ewald_keep)
        summary.duplicates_removed += duplicates
        summary.kept[key] = len(kept)
        for rank, (energy, cells, structure) in enumerate(kept, start=1):
            orderings.append(
                Ordering(
                    structure=structure,
                    x=xs[key],
                    cells=cells,
                    ewald_per_fu=energy,
                    ewald_rank=rank,
                    formula_units=_formula_units(structure, host),
                    label=f"x={xs[key]:.3f} #{rank}",
                )
            )
    summary.seconds = round(time.perf_counter() - start, 3)
    progress.emit(
        STAGE,
        f"{host.formula}",
        f"{summary.total_enumerated} orderings at {len(summary.enumerated)} x values in {summary.seconds:.1f} s; "
        f"kept {summary.total_kept} after Ewald ranking ({settings.ewald_keep} per x)",
    )
    return orderings, summary


def orderings_at(orderings: list[Ordering], x: float) -> list[Ordering]:
    """The orderings with ``x`` ions per formula unit, lowest Ewald energy first."""
    return sorted((o for o in orderings if abs(o.x - x) < X_TOLERANCE), key=lambda o: o.ewald_rank)


def _enumeration_cell(host: Host, settings: OrderingSettings) -> tuple[Structure, list[int], str]:
    if settings.supercell is not None:
        base = host.structure.copy()
        base.make_supercell(settings.supercell)
        return base, [1], f"fixed supercell {settings.supercell} of the host cell ({len(base)} atoms)"
    primitive = host.structure.get_primitive_structure()
    sizes = list(range(1, settings.max_size + 1))
    return primitive, sizes, f"supercells of 1-{settings.max_size} primitive cells ({len(primitive)} atoms each)"


def _enumerate(
    base: Structure,
    active: list[int],
    sizes: list[int],
    settings: OrderingSettings,
    summary: EnumerationSummary,
    working_ion: str,
):
    """Yield (cells, structure without vacancies) size by size, within the safety limits."""
    from icet.tools import enumerate_structures

    atoms = AseAtomsAdaptor.get_atoms(base)
    symbols = [[working_ion, VACANCY] if i in set(active) else [site.specie.symbol] for i, site in enumerate(base)]
    operations = _point_group_order(base) if len(active) * sizes[0] <= settings.max_active_sites else 1
    calibration = 1.0  # measured/estimated count of the last size: corrects the next estimate
    estimates = _size_estimates(sizes, len(active), operations, settings)
    if len(sizes) > 1 and sizes[0] in estimates:  # (a first size beyond the limits is refused below)
        progress.emit(STAGE, "plan", _plan_text(estimates, sizes, settings))
    total = 0
    for size in sizes:
        n_active = len(active) * size
        if n_active > settings.max_active_sites:
            message = (
                f"cells of {size} and more would have {n_active} active {working_ion} sites (2^{n_active} "
                f"labelings, beyond {settings.section}.max_active_sites={settings.max_active_sites})"
            )
            if size == sizes[0]:
                own_cell = settings.supercell is None or round(abs(np.linalg.det(settings.supercell))) == 1
                advice = (
                    "the host's own cell is this large (a rattled or supercell host has no smaller primitive "
                    "cell): give the symmetric host cell"
                    if own_cell
                    else f"use a smaller {settings.section}.supercell"
                )
                raise RecipeError(
                    f"the enumeration cell has {n_active} active {working_ion} sites: icet would sift 2^{n_active} "
                    f"orderings and would not finish; {advice}, or restrict {settings.section}.active_sites"
                )
            summary.notes.append(f"skipped: {message}")
            progress.emit(STAGE, f"size {size}", f"skipped: {message}")
            break
        expected = round(calibration * estimates.get(size, 0))
        if size != sizes[0] and total + expected > settings.max_enumerated:
            # not started: icet would spend minutes on a size whose count is already known to exceed the cap
            message = (
                f"cells of {size} primitive cells would add about {expected} structures (estimate), beyond "
                f"{settings.section}.max_enumerated={settings.max_enumerated} with the {total} of the smaller ones"
            )
            summary.notes.append(f"capped: {message}; kept sizes 1-{size - 1}")
            progress.emit(STAGE, f"size {size}", f"capped: {message}")
            break
        batch = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for generated in enumerate_structures(atoms, [size], symbols):
                batch.append(generated)
                if total + len(batch) > settings.max_enumerated:
                    break
        if total + len(batch) > settings.max_enumerated:
            message = (
                f"cells of {size} primitive cells exceed {settings.section}.max_enumerated={settings.max_enumerated} "
                f"structures together with the smaller ones"
            )
            if size == sizes[0]:
                raise RecipeError(
                    f"one enumeration cell alone has more than {settings.max_enumerated} orderings; use a smaller "
                    f"{settings.section}.supercell, restrict {settings.section}.active_sites, or raise "
                    f"{settings.section}.max_enumerated"
                )
            summary.notes.append(f"capped: {message}; kept sizes 1-{size - 1}")
            progress.emit(STAGE, f"size {size}", f"capped: {message}")
            break
        total += len(batch)
        summary.sizes.append(size)
        summary.per_size[str(size)] = len(batch)
        if estimates.get(size):
            calibration = max(1.0, len(batch) / estimates[size])
        progress.emit(STAGE, f"size {size}", f"{len(batch)} distinct orderings")
        for generated in batch:
            yield size, without_vacancies(generated)


def superlattice_count(size: int) -> int:
    """Hermite normal forms of determinant ``size``: the superlattices of ``size`` cells (before symmetry)."""
    return sum(
        middle * last * last
        for first in range(1, size + 1)
        if size % first == 0
        for middle in range(1, size // first + 1)
        if (size // first) % middle == 0
        for last in [size // first // middle]
    )


def estimated_orderings(size: int, active_per_cell: int, operations: int) -> float:
    """The leading (Burnside) term of the number of distinct orderings in cells of ``size`` cells.

    Labelings 2^(size * active) of every superlattice, divided by the translations and point
    operations that map them onto each other; structures that repeat a smaller cell are
    subtracted by Moebius inversion. It counts every ordering as if no operation but the
    identity left it unchanged, so it falls below icet's count, most for small cells (LiCoO2:
    icet finds 5.1x the estimate at 2 cells, 1.56x at 12); ``_enumerate`` scales it by the
    ratio measured at the previous size.
    """
    aperiodic = sum(_moebius(size // d) * 2 ** (d * active_per_cell) for d in range(1, size + 1) if size % d == 0)
    return superlattice_count(size) * aperiodic / (operations * size)


def _moebius(n: int) -> int:
    result, k = 1, 2
    while k * k <= n:
        if n % k == 0:
            n //= k
            if n % k == 0:
                return 0
            result = -result
        k += 1
    return -result if n > 1 else result


def _point_group_order(structure: Structure) -> int:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    return len(SpacegroupAnalyzer(structure, symprec=0.01).get_point_group_operations())


def _size_estimates(sizes: list[int], active_per_cell: int, operations: int, settings: OrderingSettings):
    """Estimated orderings per size, for the sizes under ``max_active_sites``."""
    return {
        size: estimated_orderings(size, active_per_cell, operations)
        for size in sizes
        if active_per_cell * size <= settings.max_active_sites
    }


def _plan_text(estimates: dict[int, float], sizes: list[int], settings: OrderingSettings) -> str:
    """One up-front line: which sizes fit the limits and about how many structures they hold."""
    running, fitting = 0.0, []
    for size in sizes:
        if size not in estimates or running + estimates[size] > settings.max_enumerated:
            break
        running += estimates[size]
        fitting.append(size)
    last = fitting[-1] if fitting else sizes[0]
    text = f"at least {round(running)} orderings expected in cells of 1-{last} (estimate)"
    if last < sizes[-1]:
        limit = (
            f"max_active_sites={settings.max_active_sites}"
            if last + 1 not in estimates
            else f"max_enumerated={settings.max_enumerated}"
        )
        text += (
            f"; {settings.section}.max_size={sizes[-1]} asks for more, but larger cells pass "
            f"{settings.section}.{limit} and will be capped"
        )
    return text


def _ewald_charges(host: Host) -> dict[str, float]:
    """Oxidation states for the Ewald sum.

    Without charge-balanced oxidation states or without a redox element (graphite, an
    intermetallic), only the working ions carry charge, against a uniform compensating
    background (pymatgen's charged-cell term): their mutual repulsion ranks the orderings.
    """
    states = dict(host.oxidation_states)
    if not states:
        guesses = host.structure.composition.oxi_state_guesses(max_sites=-50)
        states = {el: float(v) for el, v in guesses[0].items()} if guesses else {}
    if not states or not host.redox_elements:
        background = {el.symbol: 0.0 for el in host.structure.composition.elements}
        background[host.working_ion] = float(ion_charge(host.working_ion))
        return background
    return states


def _formula_units(structure: Structure, host: Host) -> int:
    return round(units_of(structure.composition, framework_unit(host.formula, host.working_ion), host.working_ion))


def _ewald_per_fu(structure: Structure, charges: dict[str, float], host: Host) -> float:
    """Ewald energy per framework unit; removed ions' charge spread evenly over the redox sites."""
    framework_units = _formula_units(structure, host)
    host_units = _formula_units(host.structure, host)
    ions_full = host.structure.composition.element_composition[host.working_ion] / host_units * framework_units
    removed = ions_full - structure.composition.element_composition[host.working_ion]
    redox_sites = sum(structure.composition.element_composition[el] for el in host.redox_elements)
    compensated = any(charges[el] for el in charges if el != host.working_ion)
    shift = removed * charges[host.working_ion] / redox_sites if compensated and redox_sites else 0.0
    oxidation = {el: value + (shift if el in host.redox_elements else 0.0) for el, value in charges.items()}
    charged = structure.copy()
    charged.add_oxidation_state_by_element(oxidation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fractional charges make pymatgen warn about non-integer species
        return EwaldSummation(charged).total_energy / framework_units


def _distinct_lowest(ranked: list[tuple[float, int, Structure]], keep: int) -> tuple[list, int]:
    """The ``keep`` lowest entries that are not the same structure; and how many duplicates were dropped."""
    # Tight tolerances: with loose defaults one misplaced ion among many framework atoms
    # falls under the RMS threshold and distinct orderings would be merged.
    matcher = tight_matcher()
    kept: list[tuple[float, int, Structure]] = []
    duplicates = 0
    for item in ranked:
        if len(kept) == keep:
            break
        same_energy = [k for k in kept if abs(k[0] - item[0]) < 1e-4]
        if any(matcher.fit(k[2], item[2]) for k in same_energy):
            duplicates += 1
            continue
        kept.append(item)
    return kept, duplicates


def tight_matcher() -> StructureMatcher:
    """A StructureMatcher for unrelaxed orderings on one parent lattice (same cell metric)."""
    return StructureMatcher(
        ltol=0.02, stol=0.05, angle_tol=0.5, primitive_cell=True, scale=False, attempt_supercell=True
    )


def _reachable_x(base: Structure, active: list[int], sizes: list[int], framework: Composition, ion: str) -> list[float]:
    """Every x the enumeration cells can hold: k active sites filled, the fixed ions kept, per framework unit."""
    units = units_of(base.composition, framework, ion)
    fixed = base.composition.element_composition[ion] - len(active)
    return sorted({(size * fixed + k) / (size * units) for size in sizes for k in range(size * len(active) + 1)})


def _wanted_keys(
    requested: list[float] | None, reachable: dict[str, float], section: str = "levels", keep_ends: bool = True
) -> list[str]:
    if not reachable:
        raise RecipeError("the enumeration produced no structure")
    ends = {min(reachable, key=lambda k: reachable[k]), max(reachable, key=lambda k: reachable[k])}
    if requested is None:
        return list(reachable)
    wanted = set(ends) if keep_ends else set()
    for x in requested:
        match = [key for key, value in reachable.items() if abs(value - x) < X_TOLERANCE]
        if not match:
            options = ", ".join(f"{reachable[k]:.4g}" for k in sorted(reachable, key=float))
            raise RecipeError(
                f"{section}.x: x={x} is not reachable with these cells; reachable x: {options}. "
                f"Use a larger {section}.supercell or {section}.max_size, or pick a reachable x"
            )
        wanted.add(match[0])
    return list(wanted)
