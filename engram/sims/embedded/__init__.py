"""The embedded world: procedural apartments and a manipulation scene in PyBullet.

`generate_apartment` and `ApartmentSpec` are pure data (no simulator import);
`EmbeddedSim` and `ManipulationScene` import pybullet when first used, so
``import engram.sims.embedded`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from engram.sims.embedded.scenes import ApartmentSpec, generate_apartment

__all__ = [
    "ApartmentSpec",
    "generate_apartment",
    "EmbeddedSim",
    "ManipulationScene",
    "GroundTruth",
    "ScriptedDynamics",
    "coverage_actions",
    "coverage_waypoints",
    "coverage_walk",
]

_LAZY = {
    "EmbeddedSim": "engram.sims.embedded.sim",
    "coverage_actions": "engram.sims.embedded.sim",
    "coverage_waypoints": "engram.sims.embedded.sim",
    "coverage_walk": "engram.sims.embedded.sim",
    "ManipulationScene": "engram.sims.embedded.manipulation",
    "GroundTruth": "engram.sims.embedded.groundtruth",
    "ScriptedDynamics": "engram.sims.embedded.dynamics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engram.sims.embedded' has no attribute {name!r}")
