"""The place graph: a topological map of where the agent was and could go.

Places are floor points about ``spacing_m`` apart: along the agent's path
(`add_pose`) and in observed free space (`add_free_space`). Two places are
joined when the straight segment between them is free in the octree: points
sampled along it (every half cell) at every height of the navigable band are
queried in one batched ``octree.state`` call; no sample may be occupied and
every sampled column must be known free somewhere in the band. Consecutive
path places are joined as the agent walks and re-checked against the octree
when free space is added. Objects hang off the places they were seen from,
snapshots off the place of their frame. Shortest paths run on the graph
(networkx, edge weight = length).

Node attributes: ``position`` (x, y, floor z), ``kind`` ("path" | "free"),
``frames`` (indices of frames taken there), ``times`` ([first, last] time),
``objects`` (set of object ids), ``snapshots`` (set of snapshot ids).
Edge attributes: ``length_m``, ``kind`` ("path" | "free"), ``via`` (for
walk edges, the [x, y] where the agent crossed between the two places: if
the straight edge proves blocked, `check_edges` routes through a place there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from engram.memory.frontiers import FREE, OCCUPIED, floor_band_grid

__all__ = ["PlaceGraph"]


def _xyz(value: Any, name: str) -> np.ndarray:
    p = np.asarray(value, dtype=np.float64).reshape(-1)
    if p.shape not in ((2,), (3,)) or not np.all(np.isfinite(p)):
        raise ValueError(f"{name} must be 2 or 3 finite numbers, got {value!r}")
    return p


class PlaceGraph:
    """Places along the path and in free space, joined where the way is free.

    Args:
        spacing_m: distance between places; a pose farther than this from
            every place starts a new one.
        floor_z_m: floor height; places lie on the floor.
        band_m: (low, high) heights above the floor that must be clear.
        edge_max_m: longest edge (default 1.5 * spacing_m, so a square
            lattice gets its diagonals).
        clearance_m: free-space places need this distance to the nearest
            occupied or unknown cell.
        level: octree level of the free-space grid and of the edge checks.
    """

    def __init__(
        self,
        spacing_m: float = 1.0,
        *,
        floor_z_m: float = 0.0,
        band_m: tuple[float, float] = (0.1, 1.5),
        edge_max_m: float | None = None,
        clearance_m: float = 0.25,
        level: int = 1,
    ) -> None:
        import networkx as nx

        if not spacing_m > 0:
            raise ValueError(f"spacing_m must be positive, got {spacing_m}")
        lo, hi = (float(b) for b in band_m)
        if not lo < hi:
            raise ValueError(f"band_m must be (low, high) with low < high, got {band_m}")
        if not np.isfinite(floor_z_m):
            raise ValueError(f"floor_z_m must be finite, got {floor_z_m}")
        if edge_max_m is not None and not edge_max_m > 0:
            raise ValueError(f"edge_max_m must be positive, got {edge_max_m}")
        if clearance_m < 0 or level < 0:
            raise ValueError("clearance_m and level must be >= 0")
        self.spacing_m = float(spacing_m)
        self.floor_z_m = float(floor_z_m)
        self.band_m = (lo, hi)
        self.edge_max_m = float(edge_max_m) if edge_max_m is not None else 1.5 * self.spacing_m
        self.clearance_m = float(clearance_m)
        self.level = int(level)
        self.graph = nx.Graph()
        self._ids = np.zeros(0, np.int64)
        self._xy = np.zeros((0, 2))
        self._next_id = 0
        self._last_place: int | None = None
        self._last_xy: np.ndarray | None = None
        self._place_of_frame: dict[int, int] = {}

    # access -------------------------------------------------------------------
    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def position(self, place_id: int) -> np.ndarray:
        """(x, y, floor z) of a place; ValueError if there is none."""
        if place_id not in self.graph:
            raise ValueError(f"no place with id {place_id!r}")
        return np.array(self.graph.nodes[place_id]["position"])

    def nearest(self, point: Sequence[float] | np.ndarray) -> int | None:
        """Id of the place nearest to ``point`` in the floor plane (None when empty)."""
        p = _xyz(point, "point")
        if len(self._ids) == 0:
            return None
        return int(self._ids[np.argmin(((self._xy - p[:2]) ** 2).sum(axis=1))])

    def place_of_frame(self, frame_index: int) -> int | None:
        """The place a frame was taken at."""
        return self._place_of_frame.get(frame_index)

    def places_of_object(self, object_id: int) -> list[int]:
        """Places an object was seen from."""
        return sorted(n for n, d in self.graph.nodes(data=True) if object_id in d["objects"])

    # writing --------------------------------------------------------------------
    def _add_node(self, xy: np.ndarray, kind: str, timestamp_s: float | None) -> int:
        pid = self._next_id
        self._next_id += 1
        times = [] if timestamp_s is None else [timestamp_s, timestamp_s]
        self.graph.add_node(
            pid,
            position=np.array([xy[0], xy[1], self.floor_z_m]),
            kind=kind,
            frames=[],
            times=times,
            objects=set(),
            snapshots=set(),
        )
        self._ids = np.append(self._ids, pid)
        self._xy = np.vstack([self._xy, xy[None, :2]])
        return pid

    def add_pose(
        self,
        position_xyz: Sequence[float] | np.ndarray,
        timestamp_s: float,
        frame_index: int,
        visible_object_ids: Iterable[int] = (),
    ) -> int:
        """Record the agent at a position (a camera or base position; z is ignored).

        The pose joins the nearest place within ``spacing_m``, else starts a
        new path place; consecutive places of the walk are joined (the agent
        went there), unless the jump is longer than ``edge_max_m`` + spacing.

        Returns:
            The place id.
        """
        p = _xyz(position_xyz, "position_xyz")
        t = float(timestamp_s)
        if not np.isfinite(t):
            raise ValueError(f"timestamp_s must be finite, got {timestamp_s!r}")
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) or frame_index < 0:
            raise ValueError(f"frame_index must be a non-negative integer, got {frame_index!r}")
        try:
            objects = {int(o) for o in visible_object_ids}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"visible_object_ids must be integers: {exc}") from exc
        pid = None
        if len(self._ids):
            d2 = ((self._xy - p[:2]) ** 2).sum(axis=1)
            i = int(np.argmin(d2))
            if d2[i] <= self.spacing_m**2:
                pid = int(self._ids[i])
        if pid is None:
            pid = self._add_node(p[:2], "path", t)
        node = self.graph.nodes[pid]
        if node["kind"] == "free":
            node["kind"] = "path"
        node["frames"].append(int(frame_index))
        node["times"] = [min(node["times"][0], t), max(node["times"][1], t)] if node["times"] else [t, t]
        node["objects"] |= objects
        self._place_of_frame[int(frame_index)] = pid
        last = self._last_place
        if last is not None and last != pid and last in self.graph:
            length = float(np.linalg.norm(self._xy[self._ids == last][0] - self._xy[self._ids == pid][0]))
            if length <= self.edge_max_m + self.spacing_m and not self.graph.has_edge(last, pid):
                # where the walk crossed from one place to the other (a doorway, say):
                # if the straight edge later proves blocked, the route goes through here
                via = p[:2] if self._last_xy is None else 0.5 * (self._last_xy + p[:2])
                self.graph.add_edge(last, pid, length_m=length, kind="path", via=[float(via[0]), float(via[1])])
        self._last_place = pid
        self._last_xy = p[:2].copy()
        return pid

    def add_free_space(self, octree, *, refresh_edges: bool = True, grid=None) -> list[int]:
        """Add places in observed free floor and join places where the way is free.

        New places go on free cells that have ``clearance_m`` to any occupied
        or unknown cell (the freest cell of each half-spacing block, freest
        blocks first), at least 0.75 ``spacing_m`` from every other place. Then every pair of
        places closer than ``edge_max_m`` is checked against the octree:
        free pairs are joined; with ``refresh_edges`` existing edges are
        re-checked first (`check_edges`). ``grid`` is the octree's `FloorGrid`
        for this graph's floor, band and level when the caller keeps one up to
        date (`BandGrid`); None builds it from the octree.

        Returns:
            Ids of the new places.
        """
        import cv2

        if grid is None:
            grid = floor_band_grid(octree, floor_z_m=self.floor_z_m, band_m=self.band_m, level=self.level)
        cell = grid.cell_size_m
        free = (grid.states == FREE).astype(np.uint8)
        new_ids: list[int] = []
        if free.any():
            # distance (m) from each free cell's centre to the nearest non-free cell's edge
            clearance = cv2.distanceTransform(np.pad(free, 1), cv2.DIST_L2, 5)[1:-1, 1:-1] * cell - 0.5 * cell
            # candidates: the freest cell of each half-spacing block; then a greedy
            # thinning keeps places at least 0.75 spacing apart (fills corners a
            # full-spacing lattice would leave empty)
            block = max(1, int(round(0.5 * self.spacing_m / cell)))
            h, w = free.shape
            hb, wb = -(-h // block), -(-w // block)
            padded = np.zeros((hb * block, wb * block), np.float32)
            padded[:h, :w] = clearance
            blocks = padded.reshape(hb, block, wb, block).transpose(0, 2, 1, 3).reshape(hb, wb, block * block)
            best = blocks.argmax(axis=2)
            best_val = np.take_along_axis(blocks, best[..., None], axis=2)[..., 0]
            br, bc = np.nonzero(best_val >= max(self.clearance_m, 1e-9))
            rows = br * block + best[br, bc] // block
            cols = bc * block + best[br, bc] % block
            cand = grid.cell_to_world(np.stack([rows, cols], axis=1))
            if len(cand):
                # keep candidates away from existing places and from each other (greedy, freest first)
                order = np.argsort(-best_val[br, bc], kind="stable")
                taken = self._xy.copy()
                min_d2 = (0.75 * self.spacing_m) ** 2
                for i in order:  # one step per lattice block
                    if len(taken) and ((taken - cand[i]) ** 2).sum(axis=1).min() < min_d2:
                        continue
                    taken = np.vstack([taken, cand[i][None]])
                    new_ids.append(self._add_node(cand[i], "free", None))
        self._connect(octree, refresh_edges)
        # a free-space place no free segment reaches is no use for routing (it returns
        # with the next call, and joins once the space around it is seen)
        lonely = [pid for pid in new_ids if self.graph.degree(pid) == 0 and len(self.graph) > 1]
        if lonely:
            self.graph.remove_nodes_from(lonely)
            keep = ~np.isin(self._ids, lonely)
            self._ids, self._xy = self._ids[keep], self._xy[keep]
        return [pid for pid in new_ids if pid not in set(lonely)]

    def check_edges(self, octree) -> int:
        """Re-check every edge against the octree; remove those that cross an obstacle.

        A blocked edge of the walk is replaced by a detour through the point
        where the agent crossed between its places (a new path place there),
        when both halves are free.

        Returns:
            The number of edges removed.
        """
        edges = list(self.graph.edges(data=True))
        if not edges:
            return 0
        pos = dict(zip(self._ids.tolist(), self._xy))
        ok = self.segments_free(
            octree, np.stack([pos[a] for a, _, _ in edges]), np.stack([pos[b] for _, b, _ in edges])
        )
        blocked = [(a, b, d) for (a, b, d), good in zip(edges, ok.tolist()) if not good]
        for a, b, _ in blocked:
            self.graph.remove_edge(a, b)
        detours = [(a, b, np.asarray(d["via"], np.float64)) for a, b, d in blocked if d.get("via") is not None]
        if detours:
            self._detour(octree, detours)
        return len(blocked)

    def _detour(self, octree, detours: list[tuple[int, int, np.ndarray]]) -> None:
        legs: list[tuple[int, int]] = []
        made: list[int] = []
        # a crossing point is usable when the floor around it is free (clearance_m in x and y)
        r = max(self.clearance_m, 1e-3)
        vias = np.stack([v for _, _, v in detours])
        arms = np.array([[r, 0.0], [0.0, r]])
        starts = (vias[:, None, :] - arms[None]).reshape(-1, 2)
        ends = (vias[:, None, :] + arms[None]).reshape(-1, 2)
        usable = np.asarray(self.segments_free(octree, starts, ends).reshape(-1, 2).all(axis=1))
        detours = [d for d, ok in zip(detours, usable) if ok]
        for a, b, via in detours:  # one step per blocked edge
            d2 = ((self._xy - via) ** 2).sum(axis=1)
            i = int(np.argmin(d2))
            if d2[i] <= (0.25 * self.spacing_m) ** 2:
                v = int(self._ids[i])
            else:
                v = self._add_node(via, "path", None)
                made.append(v)
            legs += [(x, y) for x, y in ((a, v), (v, b)) if x != y and x in self.graph and y in self.graph]
        if not legs:
            return
        pos = dict(zip(self._ids.tolist(), self._xy))
        s = np.stack([pos[x] for x, _ in legs])
        e = np.stack([pos[y] for _, y in legs])
        for (x, y), good, length in zip(legs, self.segments_free(octree, s, e).tolist(), np.linalg.norm(e - s, axis=1)):
            if good and not self.graph.has_edge(x, y):
                self.graph.add_edge(x, y, length_m=float(length), kind="path", via=None)
        unused = [v for v in made if self.graph.degree(v) == 0]
        if unused:
            self.graph.remove_nodes_from(unused)
            keep = ~np.isin(self._ids, unused)
            self._ids, self._xy = self._ids[keep], self._xy[keep]

    def _connect(self, octree, refresh: bool) -> None:
        if refresh:
            self.check_edges(octree)
        n = len(self._ids)
        if n < 2:
            return
        d = np.sqrt(((self._xy[:, None, :] - self._xy[None, :, :]) ** 2).sum(-1))
        ii, jj = np.nonzero(np.triu(d <= self.edge_max_m, k=1))
        new = [k for k in range(len(ii)) if not self.graph.has_edge(int(self._ids[ii[k]]), int(self._ids[jj[k]]))]
        if not new:
            return
        ii, jj = ii[new], jj[new]
        ok = self.segments_free(octree, self._xy[ii], self._xy[jj])
        for a, b, good, length in zip(self._ids[ii].tolist(), self._ids[jj].tolist(), ok.tolist(), d[ii, jj].tolist()):
            if good:
                self.graph.add_edge(a, b, length_m=float(length), kind="free", via=None)

    def segments_free(self, octree, starts_xy: np.ndarray, ends_xy: np.ndarray) -> np.ndarray:
        """Whether each straight floor segment is free in the octree's band.

        Points every half cell along each segment, at every cell height of
        the band, are queried in one ``octree.state`` call. A segment is free
        when no point is occupied and at every step along it some height is
        known free.

        Args:
            octree: an `OccupancyOctree`.
            starts_xy, ends_xy: "N 2" (or "N 3", z ignored) segment ends.

        Returns:
            "N" bool.
        """
        s = np.asarray(starts_xy, dtype=np.float64)[:, :2]
        e = np.asarray(ends_xy, dtype=np.float64)[:, :2]
        if s.shape != e.shape:
            raise ValueError(f"starts_xy and ends_xy must match, got {s.shape} and {e.shape}")
        if len(s) == 0:
            return np.zeros(0, bool)
        cell = float(octree.voxel_size_m) * (1 << self.level)
        length = np.linalg.norm(e - s, axis=1)
        steps = np.maximum(np.ceil(length / (0.5 * cell)).astype(np.int64), 1) + 1
        seg = np.repeat(np.arange(len(s)), steps)
        first = np.cumsum(steps) - steps
        frac = (np.arange(int(steps.sum())) - first[seg]) / (steps[seg] - 1).clip(min=1)
        xy = s[seg] + (e - s)[seg] * frac[:, None]
        lo, hi = self.band_m
        heights = self.floor_z_m + np.arange(lo + 0.5 * cell, hi, cell)
        if len(heights) == 0:
            heights = np.array([self.floor_z_m + 0.5 * (lo + hi)])
        pts = np.empty((len(xy), len(heights), 3))
        pts[..., :2] = xy[:, None, :]
        pts[..., 2] = heights[None, :]
        st = octree.state(pts.reshape(-1, 3), self.level).reshape(len(xy), len(heights))
        blocked = (st == OCCUPIED).any(axis=1)
        known_free = (st == FREE).any(axis=1)
        bad = blocked | ~known_free
        return np.bincount(seg, weights=bad, minlength=len(s)) == 0

    # attachments ------------------------------------------------------------------
    def attach_snapshots(self, snapshots: Iterable[Any]) -> None:
        """Hang snapshots (``frame_index``, ``world_from_camera``) off their places.

        Replaces the previous attachment (snapshots change as they are re-clustered).
        A snapshot whose frame is unknown here goes to the place nearest its camera.
        """
        for _, data in self.graph.nodes(data=True):
            data["snapshots"] = set()
        for snap in snapshots:
            pid = self._place_of_frame.get(int(snap.frame_index))
            if pid is None or pid not in self.graph:
                pid = self.nearest(np.asarray(snap.world_from_camera.translation))
            if pid is not None:
                self.graph.nodes[pid]["snapshots"].add(int(snap.frame_index))

    def rename_object(self, old_id: int, new_id: int) -> None:
        """Object ``old_id`` is now known as ``new_id`` (a merge)."""
        for _, data in self.graph.nodes(data=True):
            if old_id in data["objects"]:
                data["objects"].discard(old_id)
                data["objects"].add(new_id)

    def remove_object(self, object_id: int) -> None:
        for _, data in self.graph.nodes(data=True):
            data["objects"].discard(object_id)

    # reading -------------------------------------------------------------------------
    def shortest_path(self, a_xyz: Sequence[float], b_xyz: Sequence[float]) -> list[np.ndarray]:
        """Place centres from the place nearest ``a_xyz`` to the one nearest ``b_xyz``.

        Returns:
            The centres (x, y, floor z) along the shortest route, both ends
            included; an empty list when the graph is empty or no route joins them.
        """
        import networkx as nx

        a = self.nearest(a_xyz)
        b = self.nearest(b_xyz)
        if a is None or b is None:
            return []
        try:
            route = nx.astar_path(
                self.graph,
                a,
                b,
                heuristic=lambda u, v: float(
                    np.linalg.norm(self.graph.nodes[u]["position"][:2] - self.graph.nodes[v]["position"][:2])
                ),
                weight="length_m",
            )
        except nx.NetworkXNoPath:
            return []
        return [np.array(self.graph.nodes[n]["position"]) for n in route]

    # persistence -------------------------------------------------------------------------
    def to_records(self) -> dict[str, Any]:
        """Plain records (numbers, strings, lists) of nodes and edges, for saving."""
        nodes = []
        for pid, d in sorted(self.graph.nodes(data=True)):
            nodes.append(
                {
                    "id": int(pid),
                    "position": [float(v) for v in d["position"]],
                    "kind": d["kind"],
                    "frames": [int(f) for f in d["frames"]],
                    "times": [float(t) for t in d["times"]],
                    "objects": sorted(int(o) for o in d["objects"]),
                    "snapshots": sorted(int(s) for s in d["snapshots"]),
                }
            )
        edges = [
            {"a": int(a), "b": int(b), "length_m": float(d["length_m"]), "kind": d["kind"], "via": d.get("via")}
            for a, b, d in sorted(self.graph.edges(data=True), key=lambda e: (min(e[0], e[1]), max(e[0], e[1])))
        ]
        return {
            "params": {
                "spacing_m": self.spacing_m,
                "floor_z_m": self.floor_z_m,
                "band_m": list(self.band_m),
                "edge_max_m": self.edge_max_m,
                "clearance_m": self.clearance_m,
                "level": self.level,
            },
            "nodes": nodes,
            "edges": edges,
            "last_place": self._last_place,
            "last_xy": None if self._last_xy is None else [float(v) for v in self._last_xy],
        }

    @classmethod
    def from_records(cls, records: Mapping[str, Any]) -> PlaceGraph:
        """Rebuild from `to_records` output."""
        try:
            p = dict(records["params"])
            pg = cls(
                p["spacing_m"],
                floor_z_m=p["floor_z_m"],
                band_m=tuple(p["band_m"]),
                edge_max_m=p["edge_max_m"],
                clearance_m=p["clearance_m"],
                level=p["level"],
            )
            for n in records["nodes"]:
                pid = int(n["id"])
                pos = _xyz(n["position"], "position")
                pg.graph.add_node(
                    pid,
                    position=np.array([pos[0], pos[1], pg.floor_z_m]),
                    kind=str(n["kind"]),
                    frames=[int(f) for f in n["frames"]],
                    times=[float(t) for t in n["times"]],
                    objects={int(o) for o in n["objects"]},
                    snapshots={int(s) for s in n["snapshots"]},
                )
                for f in n["frames"]:
                    pg._place_of_frame[int(f)] = pid
                pg._next_id = max(pg._next_id, pid + 1)
            for e in records["edges"]:
                a, b = int(e["a"]), int(e["b"])
                if a not in pg.graph or b not in pg.graph:
                    raise ValueError(f"edge ({a}, {b}) names a missing place")
                via = e.get("via")
                via = None if via is None else [float(v) for v in via]
                pg.graph.add_edge(a, b, length_m=float(e["length_m"]), kind=str(e["kind"]), via=via)
            last = records.get("last_place")
            pg._last_place = None if last is None else int(last)
            last_xy = records.get("last_xy")
            pg._last_xy = None if last_xy is None else np.asarray(last_xy, dtype=np.float64).reshape(2)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad place graph records: {exc!r}") from exc
        ids = sorted(pg.graph.nodes)
        pg._ids = np.asarray(ids, dtype=np.int64)
        pg._xy = np.array([pg.graph.nodes[i]["position"][:2] for i in ids]).reshape(-1, 2)
        return pg

    def digest(self) -> str:
        """Content hash of places, their attachments and edges."""
        h = hashlib.sha256()
        rec = self.to_records()
        h.update(repr(rec["nodes"]).encode())
        h.update(repr(rec["edges"]).encode())
        return h.hexdigest()
