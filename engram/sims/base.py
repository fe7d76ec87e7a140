"""What every source of frames offers.

A source is anything iterable over `Frame`s. Sources that can be driven
(simulators) also implement `Simulator`: reset, step with named actions,
observe. Both are protocols: a class conforms by shape, not by inheritance.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from engram.types import Frame, Pose

# The discrete actions every driven source understands.
ACTIONS = ("move_forward", "turn_left", "turn_right", "stop")


@runtime_checkable
class FrameSource(Protocol):
    """An iterable of frames (video file, dataset, bag, simulator run)."""

    def __iter__(self) -> Iterator[Frame]: ...


@runtime_checkable
class Simulator(Protocol):
    """A world an agent acts in: the embedded PyBullet world, habitat-sim."""

    def reset(self, seed: int | None = None) -> Frame: ...

    def step(self, action: str) -> Frame: ...

    def observe(self) -> Frame: ...

    @property
    def agent_pose(self) -> Pose: ...

    def close(self) -> None: ...
