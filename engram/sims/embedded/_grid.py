"""Compiled grid search for the ground-truth free-space map (numba)."""

from __future__ import annotations

import math

import numba
import numpy as np

_SQRT2 = math.sqrt(2.0)


@numba.njit(cache=True)
def dijkstra_numba(passable: np.ndarray, si: int, sj: int) -> np.ndarray:
    """Octile (8-connected) geodesic distance in cells from (si, sj); inf where unreachable.

    Diagonal moves need both side cells passable, so paths never cut corners.
    """
    h, w = passable.shape
    dist = np.full((h, w), np.inf)
    if not passable[si, sj]:
        return dist
    dist[si, sj] = 0.0
    heap = [(0.0, si, sj)]
    dis = np.array([-1, 1, 0, 0, -1, -1, 1, 1])
    djs = np.array([0, 0, -1, 1, -1, 1, -1, 1])
    costs = np.array([1.0, 1.0, 1.0, 1.0, _SQRT2, _SQRT2, _SQRT2, _SQRT2])
    while len(heap) > 0:
        d, i, j = heapq_pop(heap)
        if d > dist[i, j]:
            continue
        for k in range(8):
            a = i + dis[k]
            b = j + djs[k]
            if a < 0 or a >= h or b < 0 or b >= w or not passable[a, b]:
                continue
            if k >= 4 and not (passable[a, j] and passable[i, b]):
                continue
            nd = d + costs[k]
            if nd < dist[a, b]:
                dist[a, b] = nd
                heapq_push(heap, (nd, a, b))
    return dist


@numba.njit(cache=True)
def heapq_push(heap, item):
    heap.append(item)
    pos = len(heap) - 1
    while pos > 0:
        parent = (pos - 1) >> 1
        if heap[parent][0] <= item[0]:
            break
        heap[pos] = heap[parent]
        pos = parent
    heap[pos] = item


@numba.njit(cache=True)
def heapq_pop(heap):
    last = heap.pop()
    if len(heap) == 0:
        return last
    top = heap[0]
    n = len(heap)
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and heap[child + 1][0] < heap[child][0]:
            child += 1
        if heap[child][0] >= last[0]:
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = last
    return top


@numba.njit(cache=True)
def rays_visible_ids(
    ids: np.ndarray,
    origin_x: float,
    origin_y: float,
    res: float,
    cam_x: float,
    cam_y: float,
    angles: np.ndarray,
    max_range: float,
    n_ids: int,
) -> np.ndarray:
    """Which positive ids a 2D ray fan from (cam_x, cam_y) reaches before hitting a negative (blocking) cell.

    Steps of half a cell; returns a bool array indexed by id (0..n_ids).
    """
    seen = np.zeros(n_ids + 1, np.bool_)
    h, w = ids.shape
    step = 0.5 * res
    n_steps = int(max_range / step)
    for k in range(angles.shape[0]):
        dx = math.cos(angles[k]) * step
        dy = math.sin(angles[k]) * step
        x, y = cam_x, cam_y
        for _ in range(n_steps):
            ix = int(math.floor((x - origin_x) / res))
            iy = int(math.floor((y - origin_y) / res))
            if ix < 0 or iy < 0 or ix >= w or iy >= h:
                break
            v = ids[iy, ix]
            if v < 0:
                break
            if v > 0:
                seen[v] = True
            x += dx
            y += dy
    return seen
