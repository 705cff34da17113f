"""Host defects at several x in one supercell: V_TM, TM_Li, Li_TM, F_O and the TM-migration pair.

The supercell is chosen once per host (a recipe setting, or the smallest diagonal multiple of
the host cell whose periodic images are at least ``min_image_distance`` apart) and every
pristine ordering and defect lives in it, so energies subtract cleanly. Pristine hosts at
each x are the lowest-Ewald Li/vacancy orderings of that supercell
(``insertflow.sampling.orderings``).

The migration pair is built here, not with pymatgen-analysis-defects' ``DefectComplex``
(which was measured to return the perfect bulk cell for the delithiated case): one TM moves
to an empty working-ion site near it (octahedral sites of the working-ion sublattice; with
``tetrahedral`` also the empty tetrahedra next to them). With no empty site (x at its
maximum) the TM exchanges with its nearest working ion: the antisite pair.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass, field

import numpy as np
from monty.json import MSONable
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from insertflow.errors import RecipeError
from insertflow.hosts import Host
from insertflow.sampling.orderings import Ordering, OrderingSettings, select_orderings, tight_matcher
from insertflow.sampling.sublattices import working_ion_sublattices

DEFECT_KINDS = ("V_TM", "TM_Li", "Li_TM", "F_O", "migration")
#: Generated structures with atoms closer than this (A) are dropped as unphysical.
MIN_DEFECT_DISTANCE = 1.5
#: Candidate migration sites lie within this much (A) of the nearest empty site.
SHELL_WIDTH = 0.5


def default_rattle_seed() -> int:
    """The rattle seed when a recipe gives none: ``INSERTFLOW_RATTLE_SEED``, else 0.

    A different seed gives other displacements (so other content keys): how a test suite
    shows that no verdict rests on one particular rattle.
    """
    value = os.environ.get("INSERTFLOW_RATTLE_SEED", "").strip()
    try:
        return int(value) if value else 0
    except ValueError as exc:
        raise RecipeError(f"INSERTFLOW_RATTLE_SEED must be an integer (got {value!r})") from exc


@dataclass
class DefectSettings(MSONable):
    """Which defects, at which x, in which supercell."""

    kinds: list[str] = field(default_factory=lambda: ["V_TM", "migration"])
    x: list[float] | None = None  # x values of the pristine host; None: every x the supercell allows
    supercell: list[list[int]] | None = None  # of the host cell; None: smallest diagonal one (see below)
    min_image_distance: float = 4.5  # A between a defect and its periodic images
    active_sites: list[str] | None = None  # working-ion sublattices that empty on charge
    orderings_per_x: int = 1  # lowest-Ewald pristine orderings per x
    tetrahedral: bool = False  # also migrate into empty tetrahedra next to empty octahedra
    rattle: float = 0.05  # A, seeded random displacement breaking symmetry (0: none)
    rattle_seed: int = field(default_factory=default_rattle_seed)  # another seed: other displacements
    max_active_sites: int = 18

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(DEFECT_KINDS))
        if unknown:
            raise RecipeError(f"defects.kinds: unknown {', '.join(unknown)}; choose from {', '.join(DEFECT_KINDS)}")
        if not self.kinds:
            raise RecipeError("defects.kinds is empty; choose from " + ", ".join(DEFECT_KINDS))
        if self.rattle < 0 or self.min_image_distance <= 0:
            raise RecipeError("defects.rattle must be >= 0 and defects.min_image_distance > 0")


@dataclass
class DefectCandidate(MSONable):
    """One defect structure, ready to relax, with what it is and where."""

    kind: str
    label: str
    x: float
    host_label: str  # the pristine ordering it was made from
    structure: Structure
    change: dict[str, int]  # atoms added (+) or removed (-) relative to the pristine cell
    site: str  # what moved or changed, e.g. "Co (1b) -> empty Li 3a site"
    hop_distance: float | None = None  # A, migration only
    destination: str | None = None  # migration: sublattice label of the site the TM went to


def image_distance(structure: Structure | Lattice) -> float:
    """Shortest distance (A) between a point and its own periodic images."""
    lattice = structure if isinstance(structure, Lattice) else structure.lattice
    return float(min(lattice.get_lll_reduced_lattice().abc))


def choose_supercell(host: Host, settings: DefectSettings) -> list[list[int]]:
    """The supercell matrix (of the host cell), validated against ``min_image_distance``."""
    if settings.supercell is not None:
        matrix = np.array(settings.supercell)
        matrix = np.diag(matrix) if matrix.shape == (3,) else matrix
        if matrix.shape != (3, 3) or round(abs(np.linalg.det(matrix))) < 1:
            raise RecipeError(
                f"defects.supercell must be 3 integers or a non-singular 3x3 matrix ({settings.supercell})"
            )
        distance = image_distance(_supercell_lattice(host, matrix))
        if distance < settings.min_image_distance - 1e-6:
            raise RecipeError(
                f"defects.supercell {matrix.tolist()} puts defect images {distance:.2f} A apart, below the minimum "
                f"defects.min_image_distance = {settings.min_image_distance} A; use a larger supercell (or lower "
                "the minimum knowingly)"
            )
        return matrix.astype(int).tolist()
    best = None
    for multiples in itertools.product(range(1, 7), repeat=3):
        # lattices only: building 216 supercells of a large host took minutes before any output
        if image_distance(_supercell_lattice(host, np.diag(multiples))) < settings.min_image_distance - 1e-6:
            continue
        key = (int(np.prod(multiples)), max(multiples) - min(multiples))  # fewest atoms, then the most even
        if best is None or key < best[0]:
            best = (key, multiples)
    if best is None:
        raise RecipeError(
            f"no diagonal supercell up to 6x6x6 keeps defect images {settings.min_image_distance} A apart; "
            "give defects.supercell"
        )
    return np.diag(best[1]).astype(int).tolist()


def _supercell_lattice(host: Host, matrix) -> Lattice:
    return Lattice(np.dot(np.asarray(matrix), host.structure.lattice.matrix))


def check_host_can_have(host: Host, kinds: list[str]) -> None:
    """Refuse defects the host cannot have, naming what is missing."""
    elements = {el.symbol for el in host.structure.composition.elements}
    if not host.redox_elements and any(k in kinds for k in ("V_TM", "TM_Li", "Li_TM", "migration")):
        wanted = ", ".join(k for k in kinds if k != "F_O")
        raise RecipeError(f"{wanted}: host {host.formula} has no transition metal")
    if "F_O" in kinds and "O" not in elements:
        raise RecipeError(f"F_O: host {host.formula} has no O to substitute")


def pristine_orderings(
    host: Host,
    matrix: list[list[int]],
    settings: DefectSettings,
    section: str = "defects",
    keep_end_members: bool = False,
) -> list[Ordering]:
    """The lowest-Ewald orderings at each requested x, all in the defect supercell.

    A defect study takes the x it is given (``keep_end_members`` False: no extra 48-atom
    relaxations); ``section`` names the recipe section in error messages.
    """
    orderings, _ = select_orderings(
        host,
        OrderingSettings(
            supercell=matrix,
            active_sites=settings.active_sites,
            x=settings.x,
            ewald_keep=settings.orderings_per_x,
            max_active_sites=settings.max_active_sites,
            section=section,
            keep_end_members=keep_end_members,
        ),
    )
    return orderings


def generate_defects(
    host: Host, matrix: list[list[int]], ordering: Ordering, settings: DefectSettings
) -> tuple[list[DefectCandidate], list[str]]:
    """Symmetry-distinct defects of ``settings.kinds`` in one pristine ordering; and notes on skipped ones."""
    full = host.structure.copy()
    full.make_supercell(matrix)
    pristine = ordering.structure
    ion = host.working_ion
    tms = host.redox_elements
    orbit_of = _orbits(pristine)
    candidates: list[DefectCandidate] = []
    notes: list[str] = []

    def add(kind: str, structure: Structure, change: dict[str, int], site: str, **extra) -> None:
        expected = pristine.composition + Composition({el: n for el, n in change.items() if n > 0})
        expected = expected - Composition({el: -n for el, n in change.items() if n < 0})
        if structure.composition != expected:
            raise AssertionError(f"{kind} generator made {structure.composition}, expected {expected}")
        closest = _closest_distance(structure)
        if closest < MIN_DEFECT_DISTANCE:
            notes.append(f"{kind} {site} at x={ordering.x:.3f} skipped: atoms {closest:.2f} A apart")
            return
        label = f"{kind} {site} x={ordering.x:.3f} [{ordering.label.split()[-1]}]"
        candidates.append(
            DefectCandidate(
                kind=kind,
                label=label,
                x=ordering.x,
                host_label=ordering.label,
                structure=structure,
                change=change,
                site=site,
                **extra,
            )
        )

    tm_sites = _representatives(pristine, orbit_of, set(tms))
    ion_sites = _representatives(pristine, orbit_of, {ion})
    labels = _site_labels(pristine)
    if "V_TM" in settings.kinds:
        for i in tm_sites:
            structure = pristine.copy()
            structure.remove_sites([i])
            add("V_TM", structure, {pristine[i].specie.symbol: -1}, f"{pristine[i].specie.symbol}({labels[i]})")
    if "TM_Li" in settings.kinds:
        for i in ion_sites:
            for tm in tms:
                structure = pristine.copy()
                structure.replace(i, tm)
                add("TM_Li", structure, {tm: 1, ion: -1}, f"{tm} on {ion}({labels[i]})")
    if "Li_TM" in settings.kinds:
        for i in tm_sites:
            structure = pristine.copy()
            structure.replace(i, ion)
            tm = pristine[i].specie.symbol
            add("Li_TM", structure, {ion: 1, tm: -1}, f"{ion} on {tm}({labels[i]})")
    if "F_O" in settings.kinds:
        for i in _representatives(pristine, orbit_of, {"O"}):
            structure = pristine.copy()
            structure.replace(i, "F")
            add("F_O", structure, {"F": 1, "O": -1}, f"F on O({labels[i]})")
    if "migration" in settings.kinds:
        for structure, site, hop, destination in _migrations(full, pristine, host, tm_sites, labels, settings):
            add("migration", structure, {}, site, hop_distance=hop, destination=destination)
    distinct = _dedupe(candidates)  # before rattling: the rattle would hide equivalences
    seen: dict[str, int] = {}
    for candidate in distinct:
        candidate.structure = rattled(candidate.structure, settings.rattle, settings.rattle_seed)
        seen[candidate.label] = seen.get(candidate.label, 0) + 1
        if seen[candidate.label] > 1:  # distinct sites with the same Wyckoff letter
            candidate.label = f"{candidate.label} ({seen[candidate.label]})"
    return distinct, notes


def rattled(structure: Structure, amplitude: float, seed: int = 0) -> Structure:
    """``structure`` with Gaussian displacements of ``amplitude`` A, seeded by the structure itself and ``seed``."""
    if amplitude <= 0:
        return structure.copy()
    salt = b"" if seed == 0 else f"seed={seed}".encode()  # seed 0 keeps the displacements of earlier versions
    digest = hashlib.sha256(np.round(structure.cart_coords, 4).tobytes() + str(structure.composition).encode() + salt)
    rng = np.random.default_rng(int(digest.hexdigest()[:12], 16))
    moved = structure.copy()
    displacements = rng.normal(0.0, amplitude, size=(len(moved), 3))
    for index, shift in enumerate(displacements):
        moved.translate_sites([index], shift, frac_coords=False, to_unit_cell=True)
    return moved


def _orbits(structure: Structure) -> list[int]:
    return [int(i) for i in SpacegroupAnalyzer(structure, symprec=0.01).get_symmetry_dataset().equivalent_atoms]


def _representatives(structure: Structure, orbit_of: list[int], species: set[str]) -> list[int]:
    seen, chosen = set(), []
    for index, site in enumerate(structure):
        if site.specie.symbol in species and orbit_of[index] not in seen:
            seen.add(orbit_of[index])
            chosen.append(index)
    return chosen


def _site_labels(structure: Structure) -> list[str]:
    """Wyckoff letter of every site in this (ordered, defect-free) cell."""
    return list(SpacegroupAnalyzer(structure, symprec=0.01).get_symmetry_dataset().wyckoffs)


def _closest_distance(structure: Structure) -> float:
    if len(structure) < 2:
        return np.inf
    *_, distances = structure.get_neighbor_list(MIN_DEFECT_DISTANCE + 1.0)
    return float(distances.min()) if len(distances) else np.inf


def _migrations(full: Structure, pristine: Structure, host: Host, tm_sites, labels, settings: DefectSettings):
    """(structure, description, hop distance, destination label) for each TM and nearby empty site."""
    ion = host.working_ion
    sublattice_of = {}
    for sub in working_ion_sublattices(full, ion):
        for index in sub.indices:
            sublattice_of[index] = sub.label
    allowed = set(settings.active_sites) if settings.active_sites else None
    occupied = [full[i].coords for i in sublattice_of]
    vacant = []  # (cart coords, label) of working-ion sites empty in this ordering
    for index, coords in zip(sublattice_of, occupied, strict=True):
        if allowed and not {sublattice_of[index], sublattice_of[index].lstrip("0123456789")} & allowed:
            continue
        if not _site_at(pristine, coords):
            vacant.append((coords, sublattice_of[index]))
    if settings.tetrahedral:
        vacant += [(coords, "tet") for coords in _tetrahedral_sites(pristine, [v[0] for v in vacant])]
    for t in tm_sites:
        tm = pristine[t].specie.symbol
        if vacant:
            for tetrahedral in sorted({label == "tet" for _, label in vacant}):
                group = [
                    (_periodic_distance(pristine, pristine[t].coords, c), c, lab)
                    for c, lab in vacant
                    if (lab == "tet") == tetrahedral
                ]
                nearest = min(d for d, _, _ in group)
                for d, coords, label in sorted(group, key=lambda item: item[0]):
                    if d > nearest + SHELL_WIDTH:
                        break
                    moved = pristine.copy()
                    moved.replace(t, tm, coords=coords, coords_are_cartesian=True)
                    where = "tetrahedral site" if tetrahedral else f"empty {ion} {label} site"
                    yield moved, f"{tm}({labels[t]}) -> {where} ({d:.2f} A)", d, label
        else:  # fully lithiated: exchange with the nearest working ion (antisite pair)
            ions = [i for i, s in enumerate(pristine) if s.specie.symbol == ion]
            nearest = min(ions, key=lambda i: pristine.get_distance(t, i))
            d = pristine.get_distance(t, nearest)
            swapped = pristine.copy()
            swapped.replace(t, ion)
            swapped.replace(nearest, tm)
            yield swapped, f"{tm}({labels[t]}) <-> {ion}({labels[nearest]}) exchange ({d:.2f} A)", d, "exchange"


def _site_at(structure: Structure, coords, tolerance: float = 0.3) -> bool:
    frac = structure.lattice.get_fractional_coords(coords)
    distances = structure.lattice.get_all_distances(structure.frac_coords, [frac])
    return bool(distances.min() < tolerance)


def _periodic_distance(structure: Structure, a, b) -> float:
    fa, fb = structure.lattice.get_fractional_coords(a), structure.lattice.get_fractional_coords(b)
    return float(structure.lattice.get_all_distances([fa], [fb])[0, 0])


def _tetrahedral_sites(structure: Structure, octahedral: list) -> list:
    """Centres of the empty tetrahedra sharing a face with the given empty octahedral sites."""
    anions = [i for i, s in enumerate(structure) if s.specie.symbol in ("O", "F", "S")]
    if not anions:
        return []
    sites = []
    anion_structure = Structure.from_sites([structure[i] for i in anions])
    for centre in octahedral:
        frac = structure.lattice.get_fractional_coords(centre)
        neighbours = anion_structure.get_sites_in_sphere(structure.lattice.get_cartesian_coords(frac), 2.6)
        if len(neighbours) < 4:
            continue
        # a tetrahedral centre sits beyond each octahedral face, at about 1.6-2.0 A from the octahedron's centre
        for a in range(len(neighbours)):
            for b in range(a + 1, len(neighbours)):
                for c in range(b + 1, len(neighbours)):
                    face = np.array([neighbours[a].coords, neighbours[b].coords, neighbours[c].coords])
                    edges = [np.linalg.norm(face[i] - face[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
                    if max(edges) > 3.3:  # not a face: includes an octahedron diagonal
                        continue
                    # octahedron centre -> face: r/sqrt(3); face -> tetrahedron centre: half that
                    outward = face.mean(axis=0) - np.asarray(centre)
                    candidate = np.asarray(centre) + 1.5 * outward
                    if not _site_at(structure, candidate, tolerance=1.4):
                        sites.append(candidate)
    unique: list = []
    for site in sites:
        if all(_periodic_distance(structure, site, other) > 0.5 for other in unique):
            unique.append(site)
    return unique


def _dedupe(candidates: list[DefectCandidate]) -> list[DefectCandidate]:
    """Drop candidates whose (unrattled) structures are symmetry-equivalent to an earlier one."""
    matcher = tight_matcher()
    kept: list[DefectCandidate] = []
    for candidate in candidates:
        same = [k for k in kept if k.kind == candidate.kind and k.x == candidate.x]
        if any(matcher.fit(k.structure, candidate.structure) for k in same):
            continue
        kept.append(candidate)
    return kept
