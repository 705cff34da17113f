"""Content keys: what makes two calculations the same calculation."""

from __future__ import annotations

import hashlib
import json

from pymatgen.core import Structure

#: Digits kept for lattice parameters (A, degrees) and fractional coordinates.
_PRECISION = 4


def canonical_structure(structure: Structure) -> dict:
    """A JSON-able description of ``structure`` that does not depend on the cell chosen.

    The Niggli-reduced cell fixes the lattice; sites are wrapped into it, rounded and
    sorted. Rotated copies and other choices of the same cell give the same result;
    a shifted origin does not (the sampler dedupes symmetry-equivalent structures).
    """
    reduced = structure.get_reduced_structure()
    lattice = [round(v, _PRECISION) for v in (*reduced.lattice.abc, *reduced.lattice.angles)]
    magmoms = reduced.site_properties.get("magmom")
    sites = []
    for i, site in enumerate(reduced):
        frac = [round(round(f, _PRECISION) % 1.0, _PRECISION) for f in site.frac_coords]
        entry = [site.species_string, frac]
        if magmoms is not None:
            entry.append(round(float(magmoms[i]), 3))
        sites.append(entry)
    sites.sort(key=json.dumps)
    return {"lattice": lattice, "sites": sites}


def content_key(structure: Structure, calculator_identity: dict, task: str, protocol: dict | None = None) -> str:
    """SHA-256 of (canonical structure, calculator name + version + settings, task, protocol).

    ``protocol`` holds insertflow's own settings that change the result of the calculation
    beyond the calculator's (the layer guard of a relaxation: ``flag`` keeps a drifted result,
    ``constrain`` relaxes again with the spacing fixed, ``off`` accepts it).
    """
    payload = {"structure": canonical_structure(structure), "calculator": calculator_identity, "task": task}
    if protocol:
        payload["protocol"] = protocol
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
