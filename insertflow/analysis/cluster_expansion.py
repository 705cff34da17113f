"""Cluster expansion of the working-ion/vacancy energy on the active sublattice (icet + trainstation).

The lattice is the enumeration cell of an insertion-levels study: its active sites hold the working
ion or a vacancy (``X``); every other site is inert. A relaxed ordering enters the fit through icet's
``map_structure_to_reference``, which also says how far its atoms moved from their ideal sites: an
ordering whose atoms drifted beyond ``max_drift`` changed into something else and is left out with
that reason. The fitted property is the formation energy against the study's end members, per
lattice site (vacancies and inert sites counted, as icet's Monte Carlo calculator expects).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from pymatgen.core import Composition, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from insertflow.analysis.profile import lower_hull
from insertflow.analysis.voltage import units_of
from insertflow.errors import InsertflowError

VACANCY = "X"


def without_vacancies(atoms: Atoms) -> Structure:
    """An icet-decorated cell as a pymatgen structure, its vacancies (``X``) removed."""
    structure = AseAtomsAdaptor.get_structure(atoms)
    if VACANCY in {sp.symbol for sp in structure.composition.elements}:
        structure.remove_species([VACANCY])
    return structure


class FitError(InsertflowError):
    """A cluster expansion that cannot be fitted from the data given."""


@dataclass
class ActiveLattice:
    """The enumeration cell with its active working-ion sites (``active``: indices into ``primitive``)."""

    primitive: Structure
    active: list[int]
    working_ion: str
    framework: Composition

    @property
    def formula_units(self) -> float:
        """Framework units per primitive cell."""
        return units_of(self.primitive.composition, self.framework, self.working_ion)

    @property
    def inert_ions(self) -> int:
        """Working ions per cell on sites that never empty (e.g. the TM-layer Li of Li2MnO3)."""
        return sum(1 for i, s in enumerate(self.primitive) if s.specie.symbol == self.working_ion) - len(self.active)

    @property
    def sites(self) -> int:
        """Lattice sites per primitive cell (active ones included)."""
        return len(self.primitive)

    def atoms(self) -> Atoms:
        """The primitive cell as ASE atoms, every active site holding the working ion."""
        return AseAtomsAdaptor.get_atoms(self.primitive)

    def chemical_symbols(self) -> list[list[str]]:
        """Allowed species per site (icet): ion or vacancy on active sites, the host's element elsewhere."""
        active = set(self.active)
        return [
            [self.working_ion, VACANCY] if i in active else [site.specie.symbol]
            for i, site in enumerate(self.primitive)
        ]

    def x_of(self, active_ions: float, cells: float) -> float:
        """Working ions per framework unit of a supercell of ``cells`` primitive cells."""
        return (active_ions + self.inert_ions * cells) / (self.formula_units * cells)

    def per_site(self, per_fu: float) -> float:
        """An energy per framework unit as an energy per lattice site."""
        return per_fu * self.formula_units / self.sites

    def per_fu(self, per_site: float) -> float:
        """An energy per lattice site as an energy per framework unit."""
        return per_site * self.sites / self.formula_units

    @property
    def inert_species(self) -> list[str]:
        """Elements on inert sites (the volume scale of icet's mapping)."""
        active = set(self.active)
        return sorted({s.specie.symbol for i, s in enumerate(self.primitive) if i not in active} - {self.working_ion})


def cluster_space(lattice: ActiveLattice, cutoffs: list[float]):
    """The icet cluster space of the active sublattice with pair, triplet, ... ``cutoffs`` (A)."""
    from icet import ClusterSpace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ClusterSpace(lattice.atoms(), list(cutoffs), lattice.chemical_symbols())


@dataclass
class TrainingPoint:
    """One relaxed ordering as the fit sees it."""

    label: str
    x: float
    formation_per_fu: float
    atoms: Atoms | None = None  # the ideal lattice decorated as the relaxed structure is (vacancies as X)
    drift: float | None = None  # A: largest displacement of an atom from its ideal site
    reason: str | None = None  # why it is left out of the fit
    source: str = "levels"  # levels or ground-state search

    @property
    def used(self) -> bool:
        """Whether the point enters the fit."""
        return self.reason is None and self.atoms is not None


def mapped_point(
    lattice: ActiveLattice,
    label: str,
    structure: Structure,
    formation_per_fu: float,
    max_drift: float,
    source: str = "levels",
) -> TrainingPoint:
    """Map a relaxed ``structure`` onto the lattice; a failed mapping or a large drift is a reason, not an error."""
    from icet.tools import map_structure_to_reference

    ion_count = structure.composition.element_composition[lattice.working_ion]
    units = units_of(structure.composition, lattice.framework, lattice.working_ion)
    x = ion_count / units
    point = TrainingPoint(label=label, x=x, formation_per_fu=formation_per_fu, source=source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mapped, info = map_structure_to_reference(
                AseAtomsAdaptor.get_atoms(structure),
                lattice.atoms(),
                inert_species=lattice.inert_species,
                suppress_warnings=True,
            )
    except Exception as exc:  # icet raises plain exceptions for cells it cannot match
        point.reason = f"does not map onto the lattice ({type(exc).__name__}: {exc})"
        return point
    point.drift = float(info.drmax)
    mapped_ions = sum(1 for s in mapped.get_chemical_symbols() if s == lattice.working_ion)
    if mapped_ions != round(ion_count):
        point.reason = f"mapping found {mapped_ions} {lattice.working_ion} sites for {round(ion_count)} ions"
    elif point.drift > max_drift:
        point.reason = (
            f"an atom moved {point.drift:.2f} A from its ideal site (> max_drift {max_drift:g} A): "
            "the relaxed structure is no longer this ordering"
        )
    point.atoms = mapped
    return point


@dataclass
class ClusterExpansionFit:
    """A fitted cluster expansion and how well it predicts what it was not trained on."""

    expansion: object  # icet ClusterExpansion
    cutoffs: list[float]
    fit_method: str
    n_structures: int
    n_parameters: int
    n_nonzero: int
    cv_rmse: float  # meV per site, k-fold
    train_rmse: float  # meV per site
    residuals: dict[str, float] = field(default_factory=dict)  # label -> meV per site (prediction - target)

    def predict_per_site(self, atoms: Atoms) -> float:
        """Formation energy per lattice site (eV)."""
        return float(self.expansion.predict(atoms))


def minimum_structures(n_parameters: int) -> int:
    """Usable orderings a fit of ``n_parameters`` needs: one more than the parameters, so CV has a test set."""
    return n_parameters + 1


def fit_cluster_expansion(
    space,
    points: list[TrainingPoint],
    lattice: ActiveLattice,
    fit_method: str = "least-squares",
    n_splits: int = 5,
    seed: int = 42,
) -> ClusterExpansionFit:
    """Fit ECIs to the usable ``points`` with k-fold cross validation (trainstation), then on all of them."""
    from icet import ClusterExpansion
    from trainstation import CrossValidationEstimator

    usable = [p for p in points if p.used]
    needed = minimum_structures(len(space))
    if len(usable) < needed:
        raise FitError(
            f"the cluster space has {len(space)} parameters (cutoffs {list(space.cutoffs)}): a fit needs at least "
            f"{needed} usable orderings and the levels study gives {len(usable)}; relax more orderings "
            "(levels.max_size, levels.screen.keep) or shorten finite_temperature.cutoffs"
        )
    matrix = np.array([space.get_cluster_vector(p.atoms) for p in usable])
    target = np.array([lattice.per_site(p.formation_per_fu) for p in usable])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = CrossValidationEstimator(
            (matrix, target),
            fit_method=fit_method,
            validation_method="k-fold",
            n_splits=min(n_splits, len(usable)),
            seed=seed,
            check_condition=False,
        )
        estimator.validate()
        estimator.train()
    parameters = np.asarray(estimator.parameters)
    expansion = ClusterExpansion(space, parameters, metadata={"fit_method": fit_method})
    predicted = matrix @ parameters
    residuals = {p.label: 1000 * float(pred - t) for p, pred, t in zip(usable, predicted, target, strict=True)}
    return ClusterExpansionFit(
        expansion=expansion,
        cutoffs=list(space.cutoffs),
        fit_method=fit_method,
        n_structures=len(usable),
        n_parameters=len(space),
        n_nonzero=int(np.count_nonzero(np.abs(parameters) > 1e-12)),
        cv_rmse=1000 * float(estimator.rmse_validation),
        train_rmse=1000 * float(np.sqrt(np.mean((predicted - target) ** 2))),
        residuals=residuals,
    )


@dataclass
class GroundState:
    """A vertex of the expansion's formation-energy hull over the enumerated cells."""

    x: float
    formation_per_fu: float
    cells: int
    atoms: Atoms
    in_training: bool = False  # the fit already holds this ordering

    def structure(self) -> Structure:
        """The ordering as a pymatgen structure, vacancies removed."""
        return without_vacancies(self.atoms)


def ground_states(
    fit: ClusterExpansionFit, lattice: ActiveLattice, max_size: int, max_structures: int = 200_000
) -> tuple[list[GroundState], int]:
    """The expansion's hull over every ordering in supercells of 1..``max_size`` cells, and how many it saw."""
    from icet.tools import enumerate_structures

    best: dict[float, tuple[float, int, Atoms]] = {}
    seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for atoms in enumerate_structures(lattice.atoms(), list(range(1, max_size + 1)), lattice.chemical_symbols()):
            seen += 1
            if seen > max_structures:
                break
            cells = round(len(atoms) / lattice.sites)
            ions = sum(1 for s in atoms.get_chemical_symbols() if s == lattice.working_ion) - lattice.inert_ions * cells
            x = round(lattice.x_of(ions, cells), 9)
            energy = lattice.per_fu(fit.predict_per_site(atoms))
            if x not in best or energy < best[x][0] - 1e-9:
                best[x] = (energy, cells, atoms.copy())
    xs = sorted(best)
    vertices = lower_hull([(x, best[x][0]) for x in xs])
    return [GroundState(xs[i], best[xs[i]][0], best[xs[i]][1], best[xs[i]][2]) for i in vertices], seen


def hull_steps(vertices: list[tuple[float, float]], voltage_ref: float, z: int) -> list[dict]:
    """0 K voltage steps between hull vertices (x, formation energy per framework unit).

    The formation energy is measured from the end-member line, whose voltage is ``voltage_ref``,
    so a step's voltage is V_ref minus its slope over z.
    """
    ordered = sorted(vertices)
    return [
        {"x_low": xa, "x_high": xb, "voltage": voltage_ref - (eb - ea) / ((xb - xa) * z)}
        for (xa, ea), (xb, eb) in itertools.pairwise(ordered)
    ]


def calculator_hull(points: list[TrainingPoint]) -> list[tuple[float, float]]:
    """The hull of the fitted orderings' own (calculator) formation energies: (x, eV per framework unit)."""
    usable = [(p.x, p.formation_per_fu) for p in points if p.used]
    return [usable[i] for i in lower_hull(usable)]
