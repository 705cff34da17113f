"""Working-ion sublattices of a host, named by Wyckoff position, and which of them vary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from insertflow.errors import HostError, RecipeError


@dataclass(frozen=True)
class Sublattice:
    """One symmetry orbit of working-ion sites, e.g. ``4h`` (conventional-cell Wyckoff label)."""

    label: str
    indices: tuple[int, ...]
    species: str

    def describe(self, structure: Structure) -> str:
        """``4h (2 sites in this cell, e.g. at 0.000 0.333 0.500)``."""
        frac = " ".join(f"{c:.3f}" for c in structure[self.indices[0]].frac_coords)
        return f"{self.label} ({len(self.indices)} site(s) in this cell, e.g. at {frac})"


def working_ion_sublattices(structure: Structure, working_ion: str, symprec: float = 0.01) -> list[Sublattice]:
    """The orbits of ``working_ion`` sites in ``structure``, labelled as in the conventional cell."""
    analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
    dataset = analyzer.get_symmetry_dataset()
    scale = len(analyzer.get_conventional_standard_structure()) / len(structure)
    orbits: dict[int, list[int]] = {}
    for index, site in enumerate(structure):
        if site.specie.symbol == working_ion:
            orbits.setdefault(int(dataset.equivalent_atoms[index]), []).append(index)
    names = [f"{round(len(idx) * scale)}{dataset.wyckoffs[idx[0]]}" for idx in orbits.values()]
    repeated = Counter(names)
    seen: Counter[str] = Counter()
    sublattices = []
    for name, indices in zip(names, orbits.values(), strict=True):
        label = name
        if repeated[name] > 1:
            seen[name] += 1
            label = f"{name}-{seen[name]}"
        sublattices.append(Sublattice(label=label, indices=tuple(indices), species=working_ion))
    return sorted(sublattices, key=lambda sub: (sub.label.lstrip("0123456789"), sub.label))


def active_site_indices(
    structure: Structure, working_ion: str, active_sites: list[str] | None, where: str = "host", section: str = "levels"
) -> list[int]:
    """Indices of the working-ion sites that may be emptied.

    ``active_sites``: Wyckoff labels such as ``["2c", "4h"]`` (or bare letters ``["c", "h"]``);
    ``None`` means every working-ion site.
    """
    sublattices = working_ion_sublattices(structure, working_ion)
    if not sublattices:
        raise HostError(f"{where} has no {working_ion} sites to vary")
    if active_sites is None:
        return sorted(i for sub in sublattices for i in sub.indices)
    chosen = []
    available = "; ".join(sub.describe(structure) for sub in sublattices)
    for wanted in active_sites:
        key = str(wanted).strip()
        matches = [sub for sub in sublattices if key in (sub.label, sub.label.lstrip("0123456789"))]
        if not matches:
            raise RecipeError(
                f"{section}.active_sites: {where} has no {working_ion} sublattice '{key}'; its {working_ion} "
                f"sublattices are: {available}"
            )
        chosen.extend(i for sub in matches for i in sub.indices)
    if not chosen:
        raise RecipeError(f"{section}.active_sites selects no {working_ion} site in {where}")
    return sorted(set(chosen))
