"""Load and validate an insertion host: a file, a builtin name, or a pymatgen object."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Element, Structure
from pymatgen.core.periodic_table import DummySpecies

from insertflow.errors import HostError
from insertflow.resources import builtin_hosts

#: Atoms closer than this (Angstrom) mean a malformed structure, not a crystal.
MIN_INTERATOMIC_DISTANCE = 0.7

_STRUCTURE_SUFFIXES = (".cif", ".vasp", ".json", ".poscar", ".mcif")


@dataclass
class Host:
    """A validated host in its ion-rich (discharged) state."""

    name: str
    structure: Structure
    working_ion: str = "Li"
    redox_elements: list[str] = field(default_factory=list)
    oxidation_states: dict[str, float] = field(default_factory=dict)
    source: str = ""

    @property
    def formula(self) -> str:
        """Reduced formula of the host, e.g. ``LiCoO2``."""
        return self.structure.composition.reduced_formula

    @property
    def framework(self) -> Composition:
        """Composition without the working ion, e.g. ``CoO2``."""
        return Composition({el: amt for el, amt in self.structure.composition.items() if el.symbol != self.working_ion})

    def summary(self) -> dict:
        """Short JSON-able description stored with every study."""
        return {
            "name": self.name,
            "formula": self.formula,
            "working_ion": self.working_ion,
            "redox_elements": self.redox_elements,
            "oxidation_states": self.oxidation_states,
            "source": self.source,
            "nsites": len(self.structure),
        }


def load_host(
    source: str | Path | Structure | dict,
    working_ion: str = "Li",
    name: str | None = None,
    check_oxidation_states: bool = True,
    relative_to: Path | None = None,
) -> Host:
    """Load a host from a path, a builtin name, a pymatgen ``Structure`` or its dict.

    ``relative_to`` is the folder a relative path is resolved against (a recipe's folder).
    Raises ``HostError`` saying what is wrong and what to do.
    """
    structure, label, origin = _read_structure(source, relative_to)
    return validate_host(
        structure,
        working_ion=working_ion,
        name=name or label,
        source=origin,
        check_oxidation_states=check_oxidation_states,
    )


def validate_host(
    structure: Structure,
    working_ion: str = "Li",
    name: str = "host",
    source: str = "",
    check_oxidation_states: bool = True,
) -> Host:
    """Check that ``structure`` can serve as an insertion host and describe it."""
    where = f"host '{name}'"
    if len(structure) == 0:
        raise HostError(f"{where} has no atoms")
    if not structure.is_ordered:
        site = next(i for i, s in enumerate(structure) if not s.is_ordered)
        raise HostError(
            f"{where} is partially occupied (site {site}: {structure[site].species}); insertflow needs an "
            "ordered host: order it first (e.g. pymatgen's OrderDisorderedStructureTransformation)"
        )
    for el in structure.composition.elements:
        if isinstance(el, DummySpecies):
            raise HostError(f"{where} contains the unknown element '{el}'")
    try:
        ion = Element(working_ion)
    except ValueError as exc:
        raise HostError(f"working ion '{working_ion}' is not an element symbol") from exc
    if ion not in structure.composition.element_composition:
        raise HostError(
            f"{where} ({structure.composition.reduced_formula}) contains no {working_ion}: give the host "
            f"in its {working_ion}-containing (discharged) state, or set working_ion to an ion it contains"
        )
    if structure.composition.element_composition.get_atomic_fraction(ion) >= 1.0:
        raise HostError(f"{where} is pure {working_ion}: there is no host framework")
    _check_distances(structure, where)
    _check_volume(structure, where)

    plain = structure.copy()
    plain.remove_oxidation_states()
    oxidation_states = _guess_oxidation_states(plain, where) if check_oxidation_states else {}
    redox = sorted(el.symbol for el in plain.composition.elements if el.is_transition_metal)
    return Host(
        name=name,
        structure=plain,
        working_ion=working_ion,
        redox_elements=redox,
        oxidation_states=oxidation_states,
        source=source,
    )


def _read_structure(source: str | Path | Structure | dict, relative_to: Path | None) -> tuple[Structure, str, str]:
    if isinstance(source, Structure):
        return source.copy(), source.composition.reduced_formula, "pymatgen Structure"
    if isinstance(source, dict):
        try:
            structure = Structure.from_dict(source)
        except Exception as exc:  # pymatgen raises many types on bad dicts
            raise HostError(f"the host dict is not a pymatgen Structure: {exc}") from exc
        return structure, structure.composition.reduced_formula, "pymatgen dict"

    text = str(source)
    builtins = builtin_hosts()
    by_lower = {key.lower(): key for key in builtins}
    if text.lower() in by_lower and not Path(text).suffix:
        key = by_lower[text.lower()]
        return _parse_file(builtins[key]), key, f"builtin:{key}"

    path = Path(text).expanduser()
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    if not path.exists():
        raise HostError(
            f"host '{text}' is neither a file ({path} does not exist) nor a builtin host ({', '.join(builtins)})"
        )
    if path.is_dir():
        raise HostError(f"host path {path} is a folder; give a CIF, POSCAR or pymatgen JSON file")
    structure = _parse_file(path)
    generic = path.name.upper().startswith(("POSCAR", "CONTCAR")) or path.stem.upper() in ("POSCAR", "CONTCAR")
    return structure, structure.composition.reduced_formula if generic else path.stem, str(path)


def _parse_file(path: Path) -> Structure:
    kind = _file_kind(path)
    try:
        if kind == "json":
            structure = Structure.from_dict(json.loads(path.read_text()))
        elif kind == "cif":
            structure = _parse_cif(path)
        else:
            if kind == "poscar":
                _check_poscar_counts(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = Structure.from_file(path)
    except HostError:
        raise
    except Exception as exc:  # parsers raise ValueError, KeyError, IndexError, ZeroDivisionError...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (
            " Is the file complete? A CIF needs its cell lengths and angles and an _atom_site loop."
            if kind == "cif"
            else ""
        )
        raise HostError(
            f"could not read {path} as a structure (pymatgen: {reason}).{hint} Give a CIF, POSCAR/CONTCAR "
            f"or pymatgen JSON file ({', '.join(_STRUCTURE_SUFFIXES)})"
        ) from exc
    return structure


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith((".cif", ".mcif")):
        return "cif"
    if name.endswith((".vasp", ".poscar")) or name.startswith(("poscar", "contcar")):
        return "poscar"
    return "other"


def _parse_cif(path: Path) -> Structure:
    """The first structure of a CIF, refused when the atoms read disagree with its stated formula."""
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = CifParser(path)
        structure = parser.parse_structures(primitive=False)[0]
        problem = parser.check(structure)  # against _chemical_formula_sum, when the file states one
    if problem:
        raise HostError(
            f"{path}: the atoms read ({structure.composition.reduced_formula}) disagree with the file's "
            f"_chemical_formula_sum ({problem}); the atom list looks cut short or the CIF is inconsistent"
        )
    return structure


def _check_poscar_counts(path: Path) -> None:
    """Refuse a POSCAR whose species counts disagree with its coordinate lines or their labels."""
    lines = path.read_text().splitlines()
    if len(lines) < 8:
        raise HostError(f"{path}: a POSCAR needs at least 8 lines (comment, scale, 3 lattice vectors, counts, mode)")
    names: list[str] | None = None
    row = 5
    if not lines[row].split() or not lines[row].split()[0].lstrip("-").isdigit():  # VASP 5: the species line
        names = [name.split("/")[0].split("_")[0] for name in lines[row].split()]
        row += 1
    try:
        counts = [int(value) for value in lines[row].split()]
    except ValueError as exc:
        raise HostError(f"{path}: line {row + 1} should hold the number of atoms of each species") from exc
    row += 1
    if lines[row].strip()[:1].lower() == "s":  # Selective dynamics
        row += 1
    row += 1  # Direct / Cartesian
    coordinates = []
    for line in lines[row:]:
        if not line.strip():
            break
        coordinates.append(line.split())
    if len(coordinates) != sum(counts):
        raise HostError(
            f"{path}: the species counts ({' '.join(map(str, counts))}, {sum(counts)} atoms) disagree with the "
            f"{len(coordinates)} coordinate lines that follow; fix the counts line"
        )
    if names is not None and len(names) != len(counts):
        raise HostError(f"{path}: {len(names)} species names but {len(counts)} counts")
    labels = [parts[-1] for parts in coordinates if len(parts) in (4, 7) and parts[-1][:1].isalpha()]
    if names is not None and len(labels) == len(coordinates):
        expected = [name for name, n in zip(names, counts, strict=True) for _ in range(n)]
        wrong = [i for i, (a, b) in enumerate(zip(expected, labels, strict=True)) if a != b.split("_")[0]]
        if wrong:
            i = wrong[0]
            raise HostError(
                f"{path}: coordinate line {i + 1} is labelled {labels[i]} but the counts make it {expected[i]}; "
                "the counts or the species line disagree with the atoms"
            )


def _check_distances(structure: Structure, where: str) -> None:
    if len(structure) < 2:
        return
    centres, neighbours, _, distances = structure.get_neighbor_list(MIN_INTERATOMIC_DISTANCE)
    if len(distances):
        worst = int(np.argmin(distances))
        i, j = int(centres[worst]), int(neighbours[worst])
        raise HostError(
            f"{where} has atoms {i} ({structure[i].specie}) and {j} ({structure[j].specie}) only "
            f"{distances[worst]:.2f} A apart (minimum {MIN_INTERATOMIC_DISTANCE} A): the structure is malformed"
        )


def _check_volume(structure: Structure, where: str) -> None:
    volume_per_atom = structure.volume / len(structure)
    if not 2.0 <= volume_per_atom <= 200.0:
        raise HostError(
            f"{where} has {volume_per_atom:.1f} A^3 per atom, outside 2-200 A^3: check the lattice units "
            "(Angstrom) and that it is a bulk crystal, not a slab or molecule in a box"
        )


def _guess_oxidation_states(structure: Structure, where: str) -> dict[str, float]:
    guesses = structure.composition.oxi_state_guesses(max_sites=-50)
    if not guesses:
        raise HostError(
            f"{where} ({structure.composition.reduced_formula}) is not charge-balanced with any common "
            "oxidation states; check the composition, or set check_oxidation_states: false for a "
            "metallic or intermetallic host"
        )
    return {el: float(value) for el, value in guesses[0].items()}


def read_structure(source: str | Path, relative_to: Path | None = None) -> Structure:
    """A structure from a file (relative to ``relative_to``), with the same clear errors as a host file."""
    structure, _, _ = _read_structure(source, relative_to)
    return structure
