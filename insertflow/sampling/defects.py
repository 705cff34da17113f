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

from insertflow.analysis.geometry import ANIONS, anion_indices, bond_cutoff, bonded_anions, face_sharing_cations
from insertflow.errors import RecipeError
from insertflow.hosts import Host
from insertflow.sampling.orderings import Ordering, OrderingSettings, select_orderings, tight_matcher
from insertflow.sampling.sublattices import working_ion_sublattices

DEFECT_KINDS = ("V_TM", "TM_Li", "Li_TM", "F_O", "migration", "exchange")
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

    kinds: list[str] = field(default_factory=lambda: ["V_TM", "migration", "exchange"])
    x: list[float] | None = None  # x values of the pristine host; None: every x the supercell allows
    supercell: list[list[int]] | None = None  # of the host cell; None: smallest diagonal one (see below)
    min_image_distance: float = 4.5  # A between a defect and its periodic images
    active_sites: list[str] | None = None  # working-ion sublattices that empty on charge
    orderings_per_x: int = 2  # lowest-Ewald pristine orderings per x (the lowest relaxed one is the reference)
    defect_hosts_per_x: int = 1  # of those, the lowest-Ewald ones that defects are made in
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
        if self.defect_hosts_per_x < 1:
            raise RecipeError("defects.defect_hosts_per_x must be at least 1")
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
    hop_distance: float | None = None  # A, migration and exchange only
    destination: str | None = None  # migration: sublattice label of the site the TM went to ("exchange": the pair)
    multiplicity: float = 1.0  # symmetry-equivalent configurations per framework formula unit
    moved_index: int | None = None  # migration/exchange: index of the TM that moved
    origin: list[float] | None = None  # ... fractional coordinates of the site it left
    target: list[float] | None = None  # ... and of the site it was put on


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
    labels = _site_labels(pristine)
    for kind, structure, change, site, multiplicity in _point_defects(pristine, host, settings.kinds, orbit_of, labels):
        add(kind, structure, change, site, multiplicity=multiplicity)
    if {"migration", "exchange"} & set(settings.kinds):
        for kind, structure, site, extra in _migrations(full, pristine, host, tm_sites, labels, settings):
            if kind in settings.kinds:
                add(kind, structure, {}, site, **extra)
    distinct = _dedupe(candidates)  # before rattling: the rattle would hide equivalences
    seen: dict[str, int] = {}
    for candidate in distinct:
        candidate.structure = rattled(candidate.structure, settings.rattle, settings.rattle_seed)
        seen[candidate.label] = seen.get(candidate.label, 0) + 1
        if seen[candidate.label] > 1:  # distinct sites with the same Wyckoff letter
            candidate.label = f"{candidate.label} ({seen[candidate.label]})"
    return distinct, notes


def _point_defects(pristine: Structure, host: Host, kinds: list[str], orbit_of: list[int], labels: list[str]):
    """(kind, structure, change, description, multiplicity per formula unit) of each requested point defect."""
    ion, tms = host.working_ion, host.redox_elements
    n_fu = _formula_units(pristine, host)

    def per_fu(index: int) -> float:  # sites of this one's orbit per framework formula unit
        return orbit_of.count(orbit_of[index]) / n_fu

    tm_sites = _representatives(pristine, orbit_of, set(tms))
    if "V_TM" in kinds:
        for i in tm_sites:
            structure = pristine.copy()
            structure.remove_sites([i])
            symbol = pristine[i].specie.symbol
            yield "V_TM", structure, {symbol: -1}, f"{symbol}({labels[i]})", per_fu(i)
    if "TM_Li" in kinds:
        for i in _representatives(pristine, orbit_of, {ion}):
            for tm in tms:
                structure = pristine.copy()
                structure.replace(i, tm)
                yield "TM_Li", structure, {tm: 1, ion: -1}, f"{tm} on {ion}({labels[i]})", per_fu(i)
    if "Li_TM" in kinds:
        for i in tm_sites:
            structure = pristine.copy()
            structure.replace(i, ion)
            tm = pristine[i].specie.symbol
            yield "Li_TM", structure, {ion: 1, tm: -1}, f"{ion} on {tm}({labels[i]})", per_fu(i)
    if "F_O" in kinds:
        for i in _representatives(pristine, orbit_of, {"O"}):
            structure = pristine.copy()
            structure.replace(i, "F")
            yield "F_O", structure, {"F": 1, "O": -1}, f"F on O({labels[i]})", per_fu(i)


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
    """(kind, structure, description, extra fields) for each TM and each nearby empty site it could take.

    Octahedral sites of the working-ion sublattice that are empty in this ordering; with
    ``tetrahedral``, also the empty tetrahedra beside them that share no face with an occupied
    cation polyhedron other than the TM's own; in a host whose working ion sits in tetrahedra
    (spinel 8a), the empty octahedral interstitials between them (16c). With no empty site (x at
    its maximum) the TM exchanges with its nearest working ion: the Li/TM exchange pair.
    """
    ion = host.working_ion
    sublattice_of = {}
    for sub in working_ion_sublattices(full, ion):
        for index in sub.indices:
            sublattice_of[index] = sub.label
    allowed = set(settings.active_sites) if settings.active_sites else None
    cutoff = bond_cutoff(full)
    vacant = []  # (cart coords, label) of working-ion sites empty in this ordering
    for index, label in sublattice_of.items():
        if allowed and not {label, label.lstrip("0123456789")} & allowed:
            continue
        if not _site_at(pristine, full[index].coords):
            vacant.append((full[index].coords, label))
    if _tetrahedral_working_ion(full, ion, cutoff):
        vacant = [(coords, "oct-i") for coords in _octahedral_interstitials(full, pristine, ion, cutoff)]
    elif settings.tetrahedral:
        vacant += [(coords, "tet") for coords in _tetrahedral_sites(pristine, [v[0] for v in vacant], cutoff)]
    n_fu = _formula_units(pristine, host)
    operations = SpacegroupAnalyzer(pristine, symprec=0.01).get_symmetry_operations()
    for t in tm_sites:
        tm = pristine[t].specie.symbol
        origin = pristine[t].frac_coords
        if vacant:
            for kind_of_site in sorted({label == "tet" for _, label in vacant}):
                group = []
                for coords, label in vacant:
                    if (label == "tet") != kind_of_site:
                        continue
                    target = pristine.lattice.get_fractional_coords(coords)
                    if label in ("tet", "oct-i") and face_sharing_cations(pristine, target, cutoff, exclude={t}):
                        continue  # shares a face with an occupied polyhedron: the TM would sit ~1.7 A from a cation
                    group.append((_periodic_distance(pristine, pristine[t].coords, coords), coords, label))
                if not group:
                    continue
                nearest = min(d for d, _, _ in group)
                for d, coords, label in sorted(group, key=lambda item: item[0]):
                    if d > nearest + SHELL_WIDTH:
                        break
                    moved = pristine.copy()
                    moved.replace(t, tm, coords=coords, coords_are_cartesian=True)
                    target = moved[t].frac_coords
                    where = {"tet": "tetrahedral site", "oct-i": "empty octahedral interstitial"}.get(
                        label, f"empty {ion} {label} site"
                    )
                    yield (
                        "migration",
                        moved,
                        f"{tm}({labels[t]}) -> {where} ({d:.2f} A)",
                        {
                            "hop_distance": d,
                            "destination": label,
                            "multiplicity": _pair_multiplicity(operations, pristine.lattice, origin, target) / n_fu,
                            "moved_index": t,
                            "origin": origin.tolist(),
                            "target": target.tolist(),
                        },
                    )
        else:  # fully lithiated: exchange with the nearest working ion (the Li/TM exchange pair)
            ions = [i for i, s in enumerate(pristine) if s.specie.symbol == ion]
            nearest = min(ions, key=lambda i: pristine.get_distance(t, i))
            d = pristine.get_distance(t, nearest)
            swapped = pristine.copy()
            swapped.replace(t, ion)
            swapped.replace(nearest, tm)
            partner = pristine[nearest].frac_coords
            yield (
                "exchange",
                swapped,
                f"{tm}({labels[t]}) <-> {ion}({labels[nearest]}) ({d:.2f} A)",
                {
                    "hop_distance": d,
                    "destination": "exchange",
                    "multiplicity": _pair_multiplicity(operations, pristine.lattice, origin, partner) / n_fu,
                    "moved_index": nearest,
                    "origin": origin.tolist(),
                    "target": partner.tolist(),
                },
            )


def _formula_units(structure: Structure, host: Host) -> float:
    """Framework formula units (host formula without the working ion) in ``structure``."""
    framework = host.framework.reduced_composition
    element = next(iter(framework.elements))
    return structure.composition[element] / framework[element]


def _pair_multiplicity(operations, lattice: Lattice, origin: np.ndarray, target: np.ndarray) -> int:
    """Distinct images of a hop (its origin and its shortest vector to ``target``) under the cell's operations.

    The hop vector, not the wrapped target, tells images apart: in a small cell one empty site
    can be the nearest to a TM through two periodic images, and those are two hops.
    """
    _, image = lattice.get_distance_and_image(origin, target)
    vector = target + image - origin
    hops = set()
    for op in operations:
        start = np.round(np.mod(op.operate(origin), 1.0), 3) % 1.0
        turned = np.round(op.apply_rotation_only(vector), 3) + 0.0
        hops.add((tuple(start), tuple(turned)))
    return len(hops)


def _tetrahedral_working_ion(full: Structure, ion: str, cutoff: float) -> bool:
    """Whether the working ion sits in tetrahedra (four bonded anions), as on spinel 8a."""
    ions = [i for i, site in enumerate(full) if site.specie.symbol == ion]
    return bool(ions) and all(len(bonded_anions(full, full[i].frac_coords, cutoff)) == 4 for i in ions)


def _octahedral_interstitials(full: Structure, pristine: Structure, ion: str, cutoff: float) -> list:
    """Empty octahedral sites midway between neighbouring working-ion tetrahedra (spinel 16c), cartesian.

    Both 8a sites of an 8a-16c-8a path share a face with the 16c octahedron, so the midpoint of
    two nearest working-ion sites is the interstitial; it is kept when six anions bond to it
    and no atom of this ordering sits there.
    """
    ions = [i for i, site in enumerate(full) if site.specie.symbol == ion]
    if len(ions) < 2:
        return []
    frac = full.frac_coords[ions]
    distances = full.lattice.get_all_distances(frac, frac)
    np.fill_diagonal(distances, np.inf)
    shortest = distances.min()
    sites = []
    for a, b in zip(*np.nonzero(distances < shortest + 0.1), strict=True):
        if a >= b:
            continue
        _, image = full.lattice.get_distance_and_image(frac[a], frac[b])
        middle = (frac[a] + frac[b] + image) / 2
        cart = full.lattice.get_cartesian_coords(middle)
        if len(bonded_anions(full, middle, cutoff)) != 6 or _site_at(pristine, cart):
            continue
        if all(_periodic_distance(full, cart, other) > 0.5 for other in sites):
            sites.append(cart)
    return sites


def _site_at(structure: Structure, coords, tolerance: float = 0.3) -> bool:
    frac = structure.lattice.get_fractional_coords(coords)
    distances = structure.lattice.get_all_distances(structure.frac_coords, [frac])
    return bool(distances.min() < tolerance)


def _periodic_distance(structure: Structure, a, b) -> float:
    fa, fb = structure.lattice.get_fractional_coords(a), structure.lattice.get_fractional_coords(b)
    return float(structure.lattice.get_all_distances([fa], [fb])[0, 0])


def _tetrahedral_sites(structure: Structure, octahedral: list, cutoff: float) -> list:
    """Centres of the empty tetrahedra sharing a face with the given empty octahedral sites (cartesian).

    Bonds come from ``cutoff`` (a multiple of the host's own shortest cation-anion distance), so
    the search works for sulfides as for oxides: a face is three anions bonded to the octahedral
    centre with no octahedron diagonal among its edges, and its tetrahedron lies beyond it.
    """
    anions = anion_indices(structure)
    if not anions:
        return []
    sites = []
    for centre in octahedral:
        neighbours = structure.get_sites_in_sphere(np.asarray(centre), cutoff)
        neighbours = [n for n in neighbours if n.specie.symbol in ANIONS]
        if len(neighbours) < 4:
            continue
        bond = float(np.mean([np.linalg.norm(n.coords - np.asarray(centre)) for n in neighbours]))
        for a, b, c in itertools.combinations(range(len(neighbours)), 3):
            face = np.array([neighbours[a].coords, neighbours[b].coords, neighbours[c].coords])
            edges = [np.linalg.norm(face[i] - face[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
            if max(edges) > 1.7 * bond:  # an octahedron diagonal (2 x bond), not an edge (sqrt(2) x bond)
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
