"""engram: a spatial and episodic memory for robots and video models.

Importing engram is cheap: the shared types only. Heavy parts (torch,
open3d, pybullet, hydra) are imported by the modules that need them.
"""

from __future__ import annotations

from engram.types import CameraIntrinsics, Frame, Pose

__version__ = "0.1.0"
__all__ = ["CameraIntrinsics", "Frame", "Pose", "__version__"]
