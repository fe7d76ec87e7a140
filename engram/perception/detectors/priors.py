"""What a segment's size and height say about what it is: a geometric prior per household category.

An ImageNet classifier on a crop is easily fooled by context and rendering (a
table top "desk", a flat-shaded box "sink"), but the camera also measures the
segment in metres: how far above the floor its top is, how long it is, whether
it is a large upward-facing surface and at what height. Furniture has typical
real-world dimensions, so these measurements are a likelihood per category
that `SegmentLabeller` multiplies with the classifier's distribution.

Measurements of one segment are of a PART of an object seen from one side
(a chair's seat and its back are two segments; the image border cuts things),
so most of them only bound the object from below: a segment 1.5 m long is no
mug, but a 0.3 m segment may be a bed's pillow end. What the likelihood uses:

* size: the segment's longest side must not exceed the category's largest
  size (soft), and must not be far below its smallest (a part is at least a
  fair share of the whole: 2/5 of the smallest size, 1/5 when the image border
  cuts it); its shorter horizontal side must not exceed the category's depth;
* top: the segment's top above the floor must not exceed the category's
  highest top, and for floor-standing furniture a segment reaching the floor
  must not stop far below the lowest top unless it is cut by the image border;
* level: a segment that mostly faces up is no ball, mug or vase;
* lowest: things that never stand on the floor (a television, a window) have
  no part near it;
* surface: a large, level, upward-facing segment is a surface at a height the
  category has one (a table top 0.7-0.8 m, a seat 0.4-0.5 m, a bed 0.4-0.7 m);
  categories without such surfaces (a mug, a lamp) are unlikely for it.

An object fused over many views (`engram.memory.objects`) is measured whole
(`measure_object`): its extent along its points' principal axes, its height
above the floor, the layer where most of its footprint ends (its level top: a
seat, a table top, a mattress), whether it is solid down to the floor or
stands on legs, and how many boards at different heights span its footprint
(open shelving has several; a cabinet, a sofa or a table one). The same
likelihood then holds it to most of a category's smallest size, wants solid
furniture to reach the floor with a solid front, things with a back (chairs,
sofas) to be as tall as one, and closed bodies to show no more than one board
(`object_label_weights`).

Typical dimensions are generic real-world figures, from furniture standards and
design references, not from any scene in this project: Neufert, *Architects'
Data* (4th ed., 2012), chapters on dwellings, kitchens and bathrooms; Panero &
Zelnik, *Human Dimension and Interior Space* (1979); ANSI/BIFMA X5.1 (office
chairs: seat 0.40-0.52 m); BS EN 1116 / ANSI kitchen cabinets (worktop
0.85-0.95 m, depth 0.6 m); mattress sizes (single 0.9 x 1.9 m to king
1.8-1.93 x 2.0-2.03 m, top 0.4-0.7 m); ADA 604 (toilet seat 0.43-0.48 m,
standard toilets 0.38-0.43 m); common appliance sizes (full-size fridges
1.5-1.9 m tall, under-counter 0.8-0.9 m, compact 0.45-0.85 m; washers and dishwashers 0.82-0.9 m);
televisions 32-75 in (0.7-1.7 m wide), monitors 19-34 in (0.4-0.85 m wide);
overall heights of seating with a back (Neufert; Panero & Zelnik: dining and desk
chairs 0.8-1.0 m, sofas and armchairs 0.7-0.95 m).
Ranges are widened by a margin, since real rooms vary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CATEGORY_PRIORS",
    "CategoryPrior",
    "SegmentGeometry",
    "geometry_likelihood",
    "measure_object",
    "measure_segments",
    "object_label_weights",
    "principal_coordinates",
]


@dataclass(frozen=True)
class CategoryPrior:
    """Typical real-world dimensions of one category (metres).

    Attributes:
        size: (smallest, largest) longest side of the whole object.
        top: (lowest, highest) height above the floor of the top of a part of it that
            reaches the floor (a chair's seat and legs without the back: 0.4 m) and of
            the whole; None for things carried around (a mug is on a table, a shelf or
            the floor).
        surfaces: height ranges of its large level upward-facing surfaces (a table top,
            a seat, a mattress); empty when it has none worth a segment of their own;
            None when any height is possible (shelves, boxes stacked anywhere).
        floor: it stands on the floor (a segment of it that reaches the floor is its full height).
        common: how common it is among things of its shape, relative to others (a level top
            at 0.75 m is more often a table than a desk in a home).
        depth: the largest short horizontal side (a bookcase is at most ~0.45 m deep,
            so a level surface 0.8 m across is not one of its shelves); None: no limit
            beyond ``size``.
        legs: it stands on legs, so its top surface is often a segment of its own, clear
            of the floor (a table top); the surface of a solid floor-standing thing (a bed,
            a cabinet) usually comes in one segment with its front, down to the floor. None:
            either (a desk on legs, or on a pedestal of drawers): a solid face down to the
            floor says nothing either way.
        round: it has no flat level face (a ball, a mug, a vase, a plant): a segment that
            is mostly level (a magazine, a box's lid) is not one of these.
        lowest: no part of it is lower than this above the floor (a television stands on
            furniture or hangs on a wall; a window starts above the floor).
        height: the least overall height of a whole one standing on the floor, when that is
            more than ``top`` says of a part of it (a chair with its back, a sofa with its back).
        closed: a closed body: one level face spans it (its top, a seat, a mattress), and
            nothing inside it shows; a whole object with boards at two heights or more that each
            span it is open shelving (a bookcase, a shelf), not this.
    """

    size: tuple[float, float]
    top: tuple[float, float] | None = None
    surfaces: tuple[tuple[float, float], ...] | None = ()
    floor: bool = False
    common: float = 1.0
    depth: float | None = None
    legs: bool | None = False
    lowest: float = 0.0
    round: bool = False
    height: float = 0.0
    closed: bool = False


# Generic real-world dimensions (sources in the module docstring), widened for variety.
CATEGORY_PRIORS: dict[str, CategoryPrior] = {
    # furniture
    "bed": CategoryPrior((1.8, 2.4), (0.35, 1.4), ((0.3, 0.68),), floor=True, depth=2.1, closed=True),
    "sofa": CategoryPrior((1.2, 3.0), (0.35, 1.05), ((0.35, 0.55),), floor=True, depth=1.1, height=0.6, closed=True),
    "chair": CategoryPrior((0.45, 1.2), (0.4, 1.15), ((0.38, 0.55),), floor=True, depth=0.75, legs=True, height=0.7),
    "bench": CategoryPrior((0.8, 2.0), (0.38, 0.9), ((0.38, 0.55),), floor=True, depth=0.6, legs=True),
    "table": CategoryPrior((0.6, 2.6), (0.38, 0.8), ((0.38, 0.8),), floor=True, depth=1.3, legs=True),
    # on legs, or on a pedestal of drawers that reaches the floor: both are desks
    "desk": CategoryPrior((0.9, 2.0), (0.68, 0.8), ((0.68, 0.8),), floor=True, common=0.6, depth=0.9, legs=None),
    "cabinet": CategoryPrior((0.4, 2.5), (0.5, 2.3), ((0.5, 1.0), (1.6, 2.3)), floor=True, depth=0.7, closed=True),
    "wardrobe": CategoryPrior((1.6, 2.6), (1.6, 2.5), (), floor=True, depth=0.75, closed=True),
    "bookcase": CategoryPrior((0.7, 2.4), (0.7, 2.4), None, floor=True, depth=0.45, common=0.6),
    "shelf": CategoryPrior((0.4, 2.4), (0.3, 2.4), None, depth=0.45),
    "drawer": CategoryPrior((0.3, 1.2), (0.4, 1.3), ((0.4, 1.3),), floor=True, depth=0.65, closed=True),
    "piano": CategoryPrior((1.2, 2.8), (0.95, 1.5), ((0.95, 1.5),), floor=True, depth=0.75, legs=True),
    "bathtub": CategoryPrior((1.4, 1.9), (0.45, 0.7), ((0.45, 0.7),), floor=True, depth=0.85, closed=True),
    "toilet": CategoryPrior((0.55, 0.85), (0.38, 0.9), ((0.35, 0.5), (0.65, 0.9)), floor=True, depth=0.55),
    "sink": CategoryPrior((0.4, 1.3), (0.75, 1.0), ((0.75, 1.0),), floor=True, depth=0.65),
    "fridge": CategoryPrior((0.45, 2.0), (0.45, 2.0), ((0.45, 0.92), (1.4, 2.0)), floor=True, depth=0.8, closed=True),
    "dishwasher": CategoryPrior((0.6, 0.92), (0.8, 0.92), ((0.8, 0.92),), floor=True, depth=0.65, closed=True),
    "washing machine": CategoryPrior((0.6, 0.92), (0.8, 0.92), ((0.8, 0.92),), floor=True, depth=0.7, closed=True),
    "stove": CategoryPrior((0.5, 0.95), (0.8, 1.0), ((0.8, 0.95),), floor=True, depth=0.7, closed=True),
    "oven": CategoryPrior((0.5, 0.95), (0.4, 1.6), ((0.8, 0.95),), depth=0.7),
    "heater": CategoryPrior((0.3, 1.6), (0.3, 1.0), (), depth=0.35),
    "door": CategoryPrior((1.9, 2.2), (1.9, 2.2), (), floor=True, depth=0.1),
    "window": CategoryPrior((0.5, 2.5), (1.0, 2.6), (), depth=0.3, lowest=0.3),
    "curtain": CategoryPrior((1.0, 2.8), (1.5, 2.8), (), floor=True, depth=0.2),
    "rug": CategoryPrior((0.6, 4.0), (0.0, 0.05), ((0.0, 0.05),), floor=True),
    "tv": CategoryPrior((0.6, 1.8), (0.8, 2.2), (), depth=0.3, lowest=0.3),
    "monitor": CategoryPrior((0.35, 0.9), None, (), depth=0.3, lowest=0.5),
    "lamp": CategoryPrior((0.25, 1.9), None, (), round=True),
    "plant": CategoryPrior((0.15, 1.8), None, (), round=True),
    "guitar": CategoryPrior((0.9, 1.1), None, (), round=True),
    "fan": CategoryPrior((0.25, 1.4), None, (), round=True),
    "trash can": CategoryPrior((0.2, 0.8), (0.2, 0.8), (), floor=True, depth=0.6, round=True),
    "printer": CategoryPrior((0.3, 0.6), None, ((0.0, 1.5),)),
    "microwave": CategoryPrior((0.4, 0.6), None, (), lowest=0.5),
    "computer": CategoryPrior((0.3, 0.6), None, ()),
    "laptop": CategoryPrior((0.25, 0.45), None, ((0.0, 1.2),), depth=0.35, lowest=0.3),
    "keyboard": CategoryPrior((0.28, 0.5), None, ((0.0, 1.2),), depth=0.2, lowest=0.3),
    "box": CategoryPrior((0.1, 0.8), None, None),
    "basket": CategoryPrior((0.2, 0.7), None, ()),
    "backpack": CategoryPrior((0.3, 0.6), None, (), round=True),
    "bag": CategoryPrior((0.2, 0.7), None, (), round=True),
    "pillow": CategoryPrior((0.3, 0.8), None, (), round=True),
    "towel": CategoryPrior((0.3, 1.5), None, ()),
    "teddy bear": CategoryPrior((0.15, 0.8), None, (), round=True),
    "speaker": CategoryPrior((0.1, 1.2), None, ()),
    "toaster": CategoryPrior((0.2, 0.4), None, ()),
    "kettle": CategoryPrior((0.15, 0.35), None, (), round=True),
    "pot": CategoryPrior((0.15, 0.45), None, (), round=True),
    "pan": CategoryPrior((0.2, 0.55), None, ()),
    "shoe": CategoryPrior((0.2, 0.35), None, (), round=True),
    # small things, carried around
    "book": CategoryPrior((0.12, 0.45), None, None, depth=0.3),
    "magazine": CategoryPrior((0.2, 0.45), None, None, depth=0.32),
    "clock": CategoryPrior((0.1, 0.5), None, (), lowest=0.8, round=True),
    "vase": CategoryPrior((0.1, 0.6), None, (), round=True),
    "bottle": CategoryPrior((0.15, 0.4), None, (), round=True),
    "jug": CategoryPrior((0.15, 0.35), None, (), round=True),
    "cup": CategoryPrior((0.05, 0.16), None, (), round=True),
    "mug": CategoryPrior((0.07, 0.16), None, (), round=True),
    "bowl": CategoryPrior((0.1, 0.35), None, (), round=True),
    "plate": CategoryPrior((0.15, 0.35), None, None),
    "ball": CategoryPrior((0.04, 0.35), None, (), round=True),
    "apple": CategoryPrior((0.05, 0.12), None, (), round=True),
    "orange": CategoryPrior((0.05, 0.12), None, (), round=True),
    "banana": CategoryPrior((0.12, 0.25), None, (), round=True),
    "remote": CategoryPrior((0.12, 0.3), None, ()),
    "phone": CategoryPrior((0.1, 0.3), None, ()),
    "mouse": CategoryPrior((0.08, 0.14), None, ()),
    "person": CategoryPrior((0.5, 2.1), None, (), round=True),
}


SEGMENT_FIELDS = ("size", "width", "top", "bottom", "surface", "level", "cut_top", "cut", "face")


@dataclass(frozen=True)
class SegmentGeometry:
    """Measurements of segments ("K" arrays, metres; NaN where unknown).

    Attributes:
        size: longest side (3D, robust: 5th to 95th percentile).
        width: shorter horizontal side (along the segment's second principal axis).
        top: height of the segment's top above the floor (NaN without a floor).
        bottom: height of its bottom above the floor.
        surface: height above the floor of its level upward-facing part when that is
            most of a large segment (NaN when it is not a surface).
        level: most of it faces up (a magazine on a table, a box's lid), whatever its size.
        cut_top: the segment touches the image's top border (its top may be higher).
        cut: it touches any image border (its size is a lower bound).
        face: most of it is one upright face at least 0.3 m tall (a cabinet's front, a
            bed's side), not legs and rails.
        whole: the measurements are of a whole object fused over many views (`measure_object`),
            not of one segment: its size is the object's, not a lower bound (None: no row is).
        boards: level layers at different heights that each span most of the object's
            footprint (a shelf's boards; a cabinet, a sofa or a table has one); a whole object
            only (None: not measured; NaN: unknown for that row).
    """

    size: np.ndarray
    width: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    surface: np.ndarray
    level: np.ndarray
    cut_top: np.ndarray
    cut: np.ndarray
    face: np.ndarray
    whole: np.ndarray | None = None
    boards: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.size)

    def __getitem__(self, idx: Any) -> SegmentGeometry:
        rows = {f: np.atleast_1d(getattr(self, f)[idx]) for f in SEGMENT_FIELDS}

        def pick(v: np.ndarray | None) -> np.ndarray | None:
            return None if v is None else np.atleast_1d(v[idx])

        return SegmentGeometry(**rows, whole=pick(self.whole), boards=pick(self.boards))

    @classmethod
    def unknown(cls, k: int) -> SegmentGeometry:
        nan = np.full(k, np.nan)
        no = np.zeros(k, bool)
        return cls(nan, nan, nan, nan, nan, no, no, no, no)


def _soft_above(x: np.ndarray, limit: float | np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    """1 up to ``limit``, then a Gaussian fall-off with width ``scale`` (NaN x gives 1)."""
    over = np.nan_to_num(x - limit, nan=0.0).clip(0.0, None)
    return np.exp(-0.5 * (over / scale) ** 2)


def _soft_below(x: np.ndarray, limit: float | np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    under = np.nan_to_num(limit - x, nan=0.0).clip(0.0, None)
    return np.exp(-0.5 * (under / scale) ** 2)


def _in_ranges(x: np.ndarray, ranges: Sequence[tuple[float, float]], scale: float) -> np.ndarray:
    """Soft membership of x in a union of ranges (1 inside, Gaussian fall-off outside)."""
    if not ranges:
        return np.zeros_like(x)
    out = np.zeros_like(x)
    for lo, hi in ranges:  # one step per range (one or two)
        out = np.maximum(out, _soft_below(x, lo, scale) * _soft_above(x, hi, scale))
    return out


# the likelihood never goes quite to zero: a measurement can be wrong (two objects in one segment,
# a floor level misjudged), and then the classifier must still be able to win
FLOOR_LIKELIHOOD = 0.02
# a whole object fused over many views is at least this share of its category's smallest size (views
# can still miss a side of it: a sofa against a wall seen only from the front is its full length)
WHOLE_SHARE = 0.7


@dataclass(frozen=True)
class _PriorTable:
    """The priors of a vocabulary as "V" arrays (NaN where a word has no such figure), for `geometry_likelihood`."""

    has: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    depth: np.ndarray
    top_lo: np.ndarray
    top_hi: np.ndarray
    floor: np.ndarray
    legs: np.ndarray
    either: np.ndarray  # on legs or solid: a face down to the floor says nothing
    round: np.ndarray
    lowest: np.ndarray
    common: np.ndarray
    height: np.ndarray
    closed: np.ndarray
    surfaces_known: np.ndarray
    surface_ranges: np.ndarray  # "V R 2" (lowest, highest), NaN rows where a word has fewer ranges

    @classmethod
    def build(cls, vocabulary: Sequence[str], priors: dict[str, CategoryPrior]) -> _PriorTable:
        prs = [priors.get(w) for w in vocabulary]
        nan = float("nan")
        n_ranges = max([len(p.surfaces) for p in prs if p is not None and p.surfaces] + [1])
        ranges = np.full((len(prs), n_ranges, 2), nan)
        for j, p in enumerate(prs):  # one step per word, once per vocabulary
            for r, span in enumerate((p.surfaces or ()) if p is not None else ()):
                ranges[j, r] = span

        def col(f: Any, default: float) -> np.ndarray:
            return np.array([default if p is None else f(p) for p in prs], np.float64)

        return cls(
            has=np.array([p is not None for p in prs]),
            lo=col(lambda p: p.size[0], nan),
            hi=col(lambda p: p.size[1], nan),
            depth=col(lambda p: nan if p.depth is None else p.depth, nan),
            top_lo=col(lambda p: nan if p.top is None else p.top[0], nan),
            top_hi=col(lambda p: nan if p.top is None else p.top[1], nan),
            floor=np.array([p is not None and p.floor and p.top is not None for p in prs]),
            legs=np.array([p is not None and p.legs is True for p in prs]),
            either=np.array([p is not None and p.legs is None for p in prs]),
            round=np.array([p is not None and p.round for p in prs]),
            lowest=col(lambda p: p.lowest, 0.0),
            common=col(lambda p: p.common, 1.0),
            height=col(lambda p: p.height, 0.0),
            closed=np.array([p is not None and p.closed for p in prs]),
            surfaces_known=np.array([p is not None and p.surfaces is not None for p in prs]),
            surface_ranges=ranges,
        )


_TABLES: dict[tuple[int, tuple[str, ...]], tuple[dict[str, CategoryPrior], _PriorTable]] = {}


def _prior_table(vocabulary: Sequence[str], priors: dict[str, CategoryPrior]) -> _PriorTable:
    key = (id(priors), tuple(vocabulary))
    hit = _TABLES.get(key)
    if hit is None or hit[0] is not priors:
        if len(_TABLES) > 64:
            _TABLES.clear()
        hit = _TABLES[key] = (priors, _PriorTable.build(vocabulary, priors))
    return hit[1]


def geometry_likelihood(
    geometry: SegmentGeometry, vocabulary: Sequence[str], priors: dict[str, CategoryPrior] | None = None
) -> np.ndarray:
    """ "K V" likelihood of each segment's measurements under each vocabulary word (at most 1).

    Words without a prior get 1 (geometry says nothing about them); unknown
    measurements (NaN) leave the terms that need them out. All words at once
    (the priors as arrays, built once per vocabulary): an object's label is
    weighed again whenever its fused box changes.
    """
    t = _prior_table(vocabulary, CATEGORY_PRIORS if priors is None else priors)
    k = len(geometry)

    def col(x: Any, dtype: Any = np.float64) -> np.ndarray:
        return np.asarray(x, dtype).reshape(k, 1)

    size, width, top, bottom, surface = (
        col(getattr(geometry, f)) for f in ("size", "width", "top", "bottom", "surface")
    )
    cut_top, cut, level = (col(getattr(geometry, f), bool) for f in ("cut_top", "cut", "level"))
    whole = np.zeros((k, 1), bool) if geometry.whole is None else col(geometry.whole, bool)
    is_surface = np.isfinite(surface)
    on_floor = np.nan_to_num(bottom, nan=np.inf) < 0.12
    floating = np.nan_to_num(bottom, nan=0.0) > 0.3
    face = col(geometry.face, bool) & on_floor
    # the least share of a category's smallest size that a measurement must reach
    least = np.where(whole, WHOLE_SHARE, np.where(cut, 0.2, 0.4))
    lo, hi = t.lo, t.hi
    with np.errstate(invalid="ignore"):
        # a part is no longer than the whole (segments glue a little of what touches them: 15% slack)
        like = _soft_above(size, 1.15 * hi + 0.03, np.nan_to_num(0.05 * hi + 0.02, nan=1.0))
        like *= _soft_above(width, 1.15 * t.depth + 0.03, np.nan_to_num(0.05 * t.depth + 0.02, nan=1.0))
        # ... and is a fair share of it (a part seen whole is at least 2/5 of the smallest such
        # thing; one cut by the image border, 1/5; a whole object fused over many views, most of it)
        like *= _soft_below(size, least * lo, np.nan_to_num(0.03 * lo + 0.01, nan=1.0))
        like *= _soft_above(top, t.top_hi + 0.05, 0.06)
        # a floor-standing segment that is not cut by the image's top is the full height of a part
        # of it that reaches the floor
        full = on_floor & ~cut_top & t.floor
        like = np.where(full, like * _soft_below(top, t.top_lo - 0.05, 0.06), like)
        # ... and a thing on legs shows no solid face down to the floor
        like = np.where(face & t.floor & t.legs, like * 0.2, like)
        like = np.where(level & t.round, like * 0.1, like)
        like = np.where(t.lowest > 0, like * _soft_below(bottom, t.lowest - 0.05, 0.06), like)
        rng = t.surface_ranges
        exists = np.isfinite(rng[:, :, 0])
        fit = np.zeros(like.shape)
        for r in range(rng.shape[1]):  # one step per surface range (one or two)
            inside = _soft_below(surface, rng[:, r, 0], 0.05) * _soft_above(surface, rng[:, r, 1], 0.05)
            fit = np.maximum(fit, np.where(exists[:, r], inside, 0.0))
        known = is_surface & t.surfaces_known
        like = np.where(known, like * np.maximum(fit, 0.05), like)
        solid = t.surfaces_known & t.floor & ~t.legs & ~t.either
        # a solid thing's top surface floating clear of the floor: only if something hides its front
        like = np.where(is_surface & floating & solid, like * 0.3, like)
        # a whole object, seen from around it: a solid thing reaches the floor with a solid front, and
        # a thing with a back is as tall as one
        clear = np.nan_to_num(bottom, nan=0.0) >= 0.12
        like = np.where(whole & clear & ~(is_surface & floating) & solid, like * 0.3, like)
        like = np.where(whole & on_floor & ~face & is_surface & solid, like * 0.5, like)
        like = np.where(whole & on_floor & (t.height > 0), like * _soft_below(top, t.height - 0.05, 0.06), like)
        if geometry.boards is not None:  # open shelving is no closed body
            boards = np.nan_to_num(col(geometry.boards), nan=0.0)
            like = np.where(whole & (boards >= 2) & t.closed, like * 0.25, like)
        out = np.where(t.has, like * t.common, 1.0)
    return np.maximum(out, FLOOR_LIKELIHOOD)


def _group_quantile(group: np.ndarray, values: np.ndarray, n_groups: int, q: float) -> np.ndarray:
    """Per-group ``q`` quantile (nearest rank) of ``values``; NaN for empty groups. One sort, no loop."""
    out = np.full(n_groups, np.nan)
    if len(values) == 0:
        return out
    order = np.lexsort((values, group))
    g, v = group[order], values[order]
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    idx = starts[has] + np.round(q * (counts[has] - 1)).astype(np.int64)
    out[has] = v[idx]
    return out


def measure_segments(
    seg: np.ndarray,
    ids: np.ndarray,
    points: np.ndarray,
    up_dot: np.ndarray,
    floor_z: float | None,
    *,
    level_dot: float = 0.9,
    surface_share: float = 0.6,
    surface_min_m: float = 0.25,
    face_share: float = 0.7,
) -> SegmentGeometry:
    """Measure segments on a grid.

    Args:
        seg: "h w" segment ids.
        ids: the "K" ids to measure.
        points: "h w 3" points in world axes (z up; NaN where there is no depth).
        up_dot: "h w" cosine between each pixel's normal and up.
        floor_z: the floor's height (world z), or None when unknown.
        level_dot: normals within this cosine of up are level.
        surface_share: share of a segment's pixels that must be level for a surface.
        surface_min_m: a surface is at least this long.
        face_share: share of upright pixels that makes a segment a face.
    """
    k = len(ids)
    if k == 0:
        return SegmentGeometry.unknown(0)
    h, w = seg.shape
    lut = np.full(int(max(seg.max(), ids.max())) + 1, -1, np.int64)
    lut[ids] = np.arange(k)
    grp = lut[seg.ravel()]
    p = points.reshape(-1, 3).astype(np.float64)
    ok = (grp >= 0) & np.isfinite(p).all(axis=1)
    g, p = grp[ok], p[ok]
    ud = np.nan_to_num(up_dot.ravel()[ok], nan=0.0)
    lo = np.stack([_group_quantile(g, p[:, a], k, 0.05) for a in range(3)], axis=1)
    hi = np.stack([_group_quantile(g, p[:, a], k, 0.95) for a in range(3)], axis=1)
    # horizontal extent along the segment's principal axes (a table turned 45 degrees is not wider)
    cnt = np.bincount(g, minlength=k).astype(np.float64)
    n = np.maximum(cnt, 1)
    mx = np.bincount(g, p[:, 0], k) / n
    my = np.bincount(g, p[:, 1], k) / n
    dx, dy = p[:, 0] - mx[g], p[:, 1] - my[g]
    sxx, syy, sxy = (np.bincount(g, a * b, k) / n for a, b in ((dx, dx), (dy, dy), (dx, dy)))
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    c, s = np.cos(theta)[g], np.sin(theta)[g]
    along, across = dx * c + dy * s, -dx * s + dy * c
    ext_a = _group_quantile(g, along, k, 0.95) - _group_quantile(g, along, k, 0.05)
    ext_b = _group_quantile(g, across, k, 0.95) - _group_quantile(g, across, k, 0.05)
    horizontal = np.fmax(ext_a, ext_b)
    vertical = hi[:, 2] - lo[:, 2]
    size = np.fmax(horizontal, vertical)
    level = ud > level_dot
    level_share = np.bincount(g, level, k) / n
    surface_z = _group_quantile(g[level], p[level, 2], k, 0.5)
    upright_share = np.bincount(g, np.abs(ud) < 0.3, k) / n
    is_surface = (level_share >= surface_share) & (horizontal >= surface_min_m)
    base = np.nan if floor_z is None else float(floor_z)
    # image-border contact, on the grid
    ys, xs = np.divmod(np.flatnonzero(grp >= 0), w)
    gg = grp[grp >= 0]
    cut_top = np.bincount(gg, ys == 0, k) > 0
    cut = cut_top | (np.bincount(gg, (ys == h - 1) | (xs == 0) | (xs == w - 1), k) > 0)
    return SegmentGeometry(
        size=size,
        width=np.fmin(ext_a, ext_b),
        top=hi[:, 2] - base,
        bottom=lo[:, 2] - base,
        surface=np.where(is_surface, surface_z - base, np.nan),
        level=level_share >= surface_share,
        cut_top=cut_top,
        cut=cut,
        face=(upright_share >= face_share) & (vertical >= 0.3),
    )


def _layer_cells(cells: np.ndarray, layer: np.ndarray, n_layers: int) -> np.ndarray:
    """How many distinct horizontal cells each height layer holds ("n_layers")."""
    ncx = int(cells.max()) + 1 if len(cells) else 1
    both = np.unique(layer.astype(np.int64) * ncx + cells)
    return np.bincount(both // ncx, minlength=n_layers)


def _boards(
    cell: np.ndarray, layer: np.ndarray, n_layers: int, footprint: int, above: float, layer_m: float, share: float
) -> int:
    """How many level layers at different heights span ``share`` of the footprint, ``above`` metres over
    the lowest layer or higher. A board can lie on a layer boundary, so each layer is taken with the
    one above it; adjacent such layers are one board."""
    # each point counts in its own layer and the one below: layer l then holds the cells of l and l + 1
    both = _layer_cells(np.concatenate([cell, cell]), np.concatenate([layer, (layer - 1).clip(0, None)]), n_layers)
    spans = both[:n_layers] >= share * footprint
    spans[: max(int(np.ceil(above / layer_m)), 0)] = False
    return int(np.count_nonzero(spans[1:] & ~spans[:-1]) + spans[0])


def principal_coordinates(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of "N 2" horizontal points along and across their principal axis, about their mean."""
    xy = np.asarray(xy, np.float64)
    xy = xy - xy.mean(axis=0)
    cov = xy.T @ xy / len(xy)
    theta = 0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])
    along = xy[:, 0] * np.cos(theta) + xy[:, 1] * np.sin(theta)
    across = -xy[:, 0] * np.sin(theta) + xy[:, 1] * np.cos(theta)
    return along, across


def measure_object(
    points: np.ndarray,
    floor_z: float | None,
    *,
    cell_m: float = 0.05,
    layer_m: float = 0.05,
    surface_share: float = 0.5,
    surface_min_m: float = 0.25,
    solid_share: float = 0.6,
    board_share: float = 0.45,
    board_clear_m: float = 0.15,
    board_min_width_m: float = 0.2,
) -> SegmentGeometry:
    """Measure one object fused over many views from its points: a `SegmentGeometry` of one row, ``whole``.

    Views from several sides give the object's own extent, its height above the floor
    and its level top, where one segment gives a part of it. Seen from above, the
    object's points occupy a set of ``cell_m`` cells (its footprint); cut into height
    layers of ``layer_m``, each layer occupies some of them.

    Args:
        points: "N 3" world points (z up), one per voxel of the object's surface.
        floor_z: the floor's height (world z), or None when unknown (heights stay NaN).
        cell_m, layer_m: horizontal cell and height layer of the footprint counts.
        surface_share: a layer that covers this share of the footprint is a level surface
            (the highest such: a sofa's seat, not the narrow top of its back).
        surface_min_m: a surface is at least this long.
        solid_share: a layer holding a row of cells this share of the object's length is
            solid there (a cabinet's front, a sofa's base; a table's legs are a few cells).
        board_share: a layer (with the one above it) that holds this share of the footprint's
            cells is a board: a shelf's boards each span it, a cabinet's inside is hidden (its
            layers hold the front and the sides), a sofa's back is narrow above its seat.
        board_clear_m: boards are counted from this high above the floor.
        board_min_width_m: boards are counted on objects at least this deep (NaN below): on a
            single face seen from the front (a kitchen counter's drawers), every ledge spans the
            thin footprint.

    Returns:
        size (longest side: horizontal extent along the points' principal axes, 5th to
        95th percentile, or the height), width (the shorter horizontal side), top and
        bottom (98th and 2nd percentile of height above the floor), surface (NaN when no
        layer qualifies), level (its height is under a quarter of its length: a magazine,
        a tray), face (it reaches the floor and is solid down to it below its surface or
        top), never cut, whole, and its boards.
    """
    p = np.asarray(points, np.float64).reshape(-1, 3)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) < 3:
        return dataclasses.replace(SegmentGeometry.unknown(1), whole=np.ones(1, bool), boards=np.full(1, np.nan))
    along, across = principal_coordinates(p[:, :2])
    a0, a1 = (float(v) for v in np.percentile(along, [5, 95]))
    b0, b1 = (float(v) for v in np.percentile(across, [5, 95]))
    z_lo, z_hi = (float(v) for v in np.percentile(p[:, 2], [1, 98]))
    length, width = max(a1 - a0, b1 - b0), min(a1 - a0, b1 - b0)
    vertical = z_hi - z_lo
    base = np.nan if floor_z is None else float(floor_z)
    ia = np.floor((along - along.min()) / cell_m).astype(np.int64)
    ib = np.floor((across - across.min()) / cell_m).astype(np.int64)
    cell_ids, cell = np.unique(ia * (int(ib.max()) + 1) + ib, return_inverse=True)
    footprint = len(cell_ids)
    layer = np.floor((p[:, 2] - z_lo) / layer_m).astype(np.int64).clip(0, None)
    n_layers = int(layer.max()) + 1
    # a level surface is where most cells, seen from above, end: the highest layer of each cell
    # (a vertical side occupies its cells over many layers, so a sphere or a pot has no such layer)
    top_layer = np.zeros(footprint, np.int64)
    np.maximum.at(top_layer, cell, layer)
    ends = np.bincount(top_layer, minlength=n_layers + 1)
    ends2 = ends[:-1] + ends[1:]  # a surface on a layer boundary ends in two layers
    surface = np.nan
    flat = np.flatnonzero(ends2 >= surface_share * footprint)
    if len(flat) and length >= surface_min_m:
        li = int(flat.max())
        on = (layer >= li) & (top_layer[cell] <= li + 1)
        surface = float(np.median(p[on, 2]))
    solid = False
    # below the surface (or the top), down to 0.1 m above the floor: a solid front or legs?
    if np.isfinite(base) and z_lo - base < 0.12:
        covered = _layer_cells(cell, layer, n_layers)
        layer_z = z_lo + (np.arange(n_layers) + 0.5) * layer_m
        upper = (surface if np.isfinite(surface) else z_hi) - 0.1
        span = (layer_z > base + 0.1) & (layer_z < upper)
        if span.sum() >= 2:
            solid = bool(np.mean(covered[span] >= solid_share * length / cell_m) >= 0.7)
    # boards: clear of the floor (a floor patch glued to the object is one layer across it)
    above = board_clear_m + (base - z_lo if np.isfinite(base) else 0.0)
    boards = (
        _boards(cell, layer, n_layers, footprint, above, layer_m, board_share) if width >= board_min_width_m else np.nan
    )
    one = lambda x: np.array([x])  # noqa: E731
    return SegmentGeometry(
        size=one(max(length, vertical)),
        width=one(width),
        top=one(z_hi - base),
        bottom=one(z_lo - base),
        surface=one(surface - base),
        level=one(vertical < 0.25 * length),
        cut_top=one(False),
        cut=one(False),
        face=one(solid),
        whole=one(True),
        boards=one(float(boards)),
    )


def object_label_weights(
    points: np.ndarray, floor_z: float | None, priors: dict[str, CategoryPrior] | None = None
) -> dict[str, float]:
    """How well an object fused over many views fits each category of the prior (`measure_object`,
    then `geometry_likelihood` over every word that has a prior), relative to the best fit."""
    priors = CATEGORY_PRIORS if priors is None else priors
    words = tuple(priors)
    like = geometry_likelihood(measure_object(points, floor_z), words, priors)[0]
    like = like / max(float(like.max()), 1e-12)
    return dict(zip(words, like.tolist()))


def combine(vocab_probs: np.ndarray, likelihood: np.ndarray, *, mix: float | np.ndarray = 0.5) -> np.ndarray:
    """Classifier distribution x geometric likelihood -> "K V" posterior over the words (rows sum to 1).

    The classifier is not trusted blindly on crops unlike its training images: its
    distribution over the words is mixed with a uniform one (``mix``), so that a
    category it gives almost nothing can still win on geometry. The mass it gives to
    classes outside the vocabulary is left out: the posterior says which word fits
    best, and how clearly (a segment that many words fit equally stays unnamed).
    """
    p = np.asarray(vocab_probs, np.float64)
    like = np.asarray(likelihood, np.float64)
    v = p.shape[1]
    total = p.sum(axis=1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / v)
    mix = np.asarray(mix, np.float64)
    q = ((1.0 - mix) * p + mix / v) * like
    z = q.sum(axis=1, keepdims=True)
    return q / np.where(z > 0, z, 1.0)
