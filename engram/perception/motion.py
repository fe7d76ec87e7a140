"""Per-frame static / dynamic split: which pixels show something that moves.

Two kinds of evidence, both per pixel and vectorised:

* semantic: instances whose category is known to move (people, animals,
  robots) are dynamic wherever they stand;
* geometric: depth that contradicts the static map. The memory layer looks up
  the static map's log-odds at each measured endpoint and passes them here; an
  endpoint inside confidently free space means something is there now that was
  not before.

Isolated contradicting pixels are mostly sensor noise and pose jitter at depth
edges, so the geometric mask is cleaned with a morphological opening and only
blobs above a minimum size survive. This module never touches the memory: the
caller hands in arrays (perception does not import memory).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["DYNAMIC_CATEGORIES", "MotionSplit", "semantic_dynamic_mask", "contradiction_mask", "split_dynamic"]

# Categories that move on their own. A user with other movers passes their own set.
DYNAMIC_CATEGORIES = frozenset({"person", "human", "pedestrian", "dog", "cat", "robot", "animal"})


@dataclass
class MotionSplit:
    """Result of `split_dynamic` for one frame.

    Attributes:
        dynamic_pixels: "H W" bool, True where the frame shows something moving.
        semantic_pixels: "H W" bool, the part of ``dynamic_pixels`` owed to moving
            categories (dilated like it); the rest is geometric evidence only.
        n_semantic: pixels flagged by category.
        n_geometric: pixels flagged by contradiction with the static map (after cleaning).
    """

    dynamic_pixels: np.ndarray
    semantic_pixels: np.ndarray
    n_semantic: int
    n_geometric: int


def semantic_dynamic_mask(
    instances: np.ndarray | None, labels: dict[int, str], categories: Iterable[str] = DYNAMIC_CATEGORIES
) -> np.ndarray | None:
    """Pixels of instances whose label is a moving category, or None without instances."""
    if instances is None:
        return None
    cats = {c.lower() for c in categories}
    ids = [i for i, name in labels.items() if name.lower() in cats]
    if not ids:
        return np.zeros(instances.shape, dtype=bool)
    return np.isin(instances, np.asarray(ids, dtype=instances.dtype))


def contradiction_mask(
    pixels_uv: np.ndarray,
    endpoint_log_odds: np.ndarray,
    shape_hw: tuple[int, int],
    *,
    free_log_odds: float = -1.0,
    stride: int = 1,
    min_blob_px: int = 12,
) -> np.ndarray:
    """Pixels whose depth endpoint lies in confidently free space of the static map.

    Args:
        pixels_uv: "N 2" (u, v) pixel of each measured endpoint.
        endpoint_log_odds: "N" static-map log-odds at each endpoint (NaN = unknown).
        shape_hw: image size.
        free_log_odds: endpoints at or below this are "confidently free"
            (OctoMap's miss update is -0.405, so -1.0 means about three misses).
        stride: the sampling stride the endpoints were taken at; the mask is
            cleaned on that grid and upsampled back.
        min_blob_px: blobs smaller than this many (strided) pixels are dropped.

    Returns:
        "H W" bool mask.
    """
    import cv2

    h, w = shape_hw
    gh, gw = (h + stride - 1) // stride, (w + stride - 1) // stride
    grid: np.ndarray = np.zeros((gh, gw), np.uint8)
    with np.errstate(invalid="ignore"):
        hit = endpoint_log_odds <= free_log_odds
    if hit.any():
        uv = pixels_uv[hit] // stride
        grid[uv[:, 1], uv[:, 0]] = 1
        grid = cv2.morphologyEx(grid, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        n, lab, stats, _ = cv2.connectedComponentsWithStats(grid, connectivity=8)
        keep = np.zeros(n, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_blob_px
        grid = keep[lab].astype(np.uint8)
    full = np.repeat(np.repeat(grid, stride, axis=0), stride, axis=1)[:h, :w]
    return full.astype(bool)


def split_dynamic(
    shape_hw: tuple[int, int],
    *,
    instances: np.ndarray | None = None,
    labels: dict[int, str] | None = None,
    pixels_uv: np.ndarray | None = None,
    endpoint_log_odds: np.ndarray | None = None,
    stride: int = 1,
    categories: Iterable[str] = DYNAMIC_CATEGORIES,
    free_log_odds: float = -1.0,
    min_blob_px: int = 12,
    dilate_px: int = 2,
) -> MotionSplit:
    """Combine semantic and geometric evidence into one dynamic-pixel mask.

    The union is dilated by ``dilate_px`` so that depth-edge pixels around a
    moving body (mixed foreground/background depth) do not leak into the
    static map as a ghost outline.
    """
    import cv2

    h, w = shape_hw
    mask = np.zeros((h, w), bool)
    n_sem = n_geo = 0
    sem = semantic_dynamic_mask(instances, labels or {}, categories)
    if sem is not None:
        mask |= sem
        n_sem = int(sem.sum())
    sem_mask = mask.copy()
    if pixels_uv is not None and endpoint_log_odds is not None and len(pixels_uv):
        geo = contradiction_mask(
            pixels_uv, endpoint_log_odds, (h, w), free_log_odds=free_log_odds, stride=stride, min_blob_px=min_blob_px
        )
        n_geo = int(geo.sum())
        mask |= geo
    if dilate_px > 0 and mask.any():
        k = 2 * dilate_px + 1
        kernel = np.ones((k, k), np.uint8)
        mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        if n_sem:
            sem_mask = cv2.dilate(sem_mask.astype(np.uint8), kernel).astype(bool)
    return MotionSplit(dynamic_pixels=mask, semantic_pixels=sem_mask, n_semantic=n_sem, n_geometric=n_geo)
