"""insertflow: first-principles studies of ion-insertion materials as jobflow workflows.

The notebook API (``insertflow.db``) is re-exported here: ``insertflow.voltage_profile(name)``,
``insertflow.studies()``, ``insertflow.orderings(name)``, ``insertflow.defects(name)``,
``insertflow.hysteresis(name)``, ``insertflow.barriers(name)``, ``insertflow.descriptors(name)``,
``insertflow.get_structure(name, label)``.
"""

__version__ = "0.1.0"

from insertflow.db import (
    barriers,
    cluster_expansion,
    committee,
    connect,
    defects,
    descriptors,
    finite_temperature,
    get_structure,
    hysteresis,
    orderings,
    spot_checks,
    studies,
    study,
    voltage_profile,
)

__all__ = [
    "barriers",
    "cluster_expansion",
    "committee",
    "connect",
    "defects",
    "descriptors",
    "finite_temperature",
    "get_structure",
    "hysteresis",
    "orderings",
    "spot_checks",
    "studies",
    "study",
    "voltage_profile",
]
