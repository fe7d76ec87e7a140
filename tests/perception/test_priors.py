"""The geometric prior per household category: measurements of segments, and what they say about names."""

from __future__ import annotations

import numpy as np
import pytest

from engram.perception.detectors.priors import (
    CATEGORY_PRIORS,
    SegmentGeometry,
    combine,
    geometry_likelihood,
    measure_segments,
)
from engram.perception.detectors.vocabulary import DEFAULT_VOCABULARY

VOCAB = list(DEFAULT_VOCABULARY)


def _geom(
    size, top, bottom, surface=np.nan, cut_top=False, cut=False, width=None, face=False, level=None
) -> SegmentGeometry:
    return SegmentGeometry(
        np.array([size], float),
        np.array([size if width is None else width], float),
        np.array([top], float),
        np.array([bottom], float),
        np.array([surface], float),
        np.array([np.isfinite(surface) if level is None else level]),
        np.array([cut_top]),
        np.array([cut]),
        np.array([face]),
    )


def _label(geometry: SegmentGeometry, probs: np.ndarray | None = None) -> str:
    p = np.full((1, len(VOCAB)), 1.0 / len(VOCAB)) if probs is None else probs
    post = combine(p, geometry_likelihood(geometry, VOCAB))
    assert post.sum() == pytest.approx(1.0)
    return VOCAB[int(post[0].argmax())]


def test_every_prior_is_a_vocabulary_word_with_sane_ranges():
    assert set(CATEGORY_PRIORS) <= set(VOCAB)
    for word, pr in CATEGORY_PRIORS.items():
        assert 0 < pr.size[0] <= pr.size[1] <= 4.0, word
        if pr.top is not None:
            assert 0 <= pr.top[0] <= pr.top[1] <= 3.0, word


def test_a_dining_table_top_with_a_flat_classifier_is_a_table():
    # a level surface 1.6 m long at 0.75 m, floating (its legs are separate slivers), classifier undecided
    assert _label(_geom(size=1.6, width=0.9, top=0.77, bottom=0.72, surface=0.75)) == "table"


@pytest.mark.parametrize(
    ("geometry", "word"),
    [
        (_geom(size=2.0, width=1.4, top=0.6, bottom=0.0, surface=0.55), "bed"),  # mattress top 0.55 m, 2 m long
        (_geom(size=2.0, width=0.6, top=2.0, bottom=0.0), "wardrobe"),  # a 2 m tall floor-standing face
        (_geom(size=1.7, width=0.75, top=0.6, bottom=0.02, surface=0.58), "bathtub"),
    ],
)
def test_furniture_geometry_alone_names_it(geometry, word):
    dist = geometry_likelihood(geometry, VOCAB)[0]
    assert dist[VOCAB.index(word)] == pytest.approx(1.0)
    assert _label(geometry) in {word} | {"cabinet", "bookcase", "fridge", "door", "sofa", "bench", "table"}


def test_a_seat_is_no_bed_table_or_wardrobe():
    like = geometry_likelihood(_geom(size=0.45, width=0.42, top=0.47, bottom=0.0, surface=0.45), VOCAB)[0]
    assert like[VOCAB.index("chair")] == 1.0
    for big in ("bed", "wardrobe", "bathtub", "desk"):  # (a low side table, a sofa cushion, a compact fridge fit)
        assert like[VOCAB.index(big)] < 0.2, big


def test_a_mug_sized_segment_is_never_a_bed_or_a_table():
    g = _geom(size=0.1, width=0.08, top=0.85, bottom=0.75)  # a mug on a table
    like = geometry_likelihood(g, VOCAB)[0]
    for big in ("bed", "table", "sofa", "wardrobe", "fridge", "bathtub"):
        assert like[VOCAB.index(big)] < 0.05, big
    assert like[VOCAB.index("mug")] == 1.0
    # even when the classifier says "bed" with most of its mass
    p = np.zeros((1, len(VOCAB)))
    p[0, VOCAB.index("bed")] = 0.7
    p[0, VOCAB.index("mug")] = 0.05
    assert _label(g, p) != "bed"


def test_a_flat_thing_lying_on_a_table_is_no_ball_or_mug():
    g = _geom(size=0.3, width=0.22, top=0.77, bottom=0.75, level=True)  # a magazine
    like = geometry_likelihood(g, VOCAB)[0]
    for round_thing in ("ball", "mug", "vase", "bottle", "plant"):
        assert like[VOCAB.index(round_thing)] <= 0.1, round_thing
    assert like[VOCAB.index("magazine")] == 1.0 and like[VOCAB.index("book")] == 1.0


def test_a_confident_classifier_still_names_what_geometry_allows():
    g = _geom(size=1.5, width=0.7, top=0.77, bottom=0.72, surface=0.75)
    p = np.zeros((1, len(VOCAB)))
    p[0, VOCAB.index("desk")] = 0.8
    assert _label(g, p) == "desk"  # a desk top fits too: the classifier decides between them


def test_unknown_measurements_leave_the_classifier_alone():
    g = SegmentGeometry.unknown(1)
    common = [CATEGORY_PRIORS[w].common if w in CATEGORY_PRIORS else 1.0 for w in VOCAB]
    assert np.allclose(geometry_likelihood(g, VOCAB)[0], common)  # only how common each thing is
    p = np.zeros((1, len(VOCAB)))
    p[0, VOCAB.index("bed")] = 0.6
    assert _label(g, p) == "bed"


def test_measure_segments_on_a_synthetic_table_and_mug():
    # grid of world points: a 1.4 x 0.8 m table top at 0.75 m (segment 1) and a 0.08 m mug on it (segment 2)
    h, w = 40, 70
    xs, ys = np.meshgrid(np.linspace(0, 1.4, w), np.linspace(0, 0.8, h))
    pts = np.stack([xs, ys, np.full_like(xs, 0.75)], axis=2)
    seg = np.ones((h, w), np.int32)
    up = np.ones((h, w))
    seg[18:22, 30:34] = 2
    pts[18:22, 30:34, 0] = np.linspace(0.6, 0.68, 4)[None, :]
    pts[18:22, 30:34, 1] = 0.4
    pts[18:22, 30:34, 2] = np.linspace(0.85, 0.75, 4)[:, None]
    up[18:22, 30:34] = 0.0
    seg[:, 0] = 0  # a border column that belongs to no segment
    g = measure_segments(seg, np.array([1, 2]), pts, up, floor_z=0.0)
    assert g.size[0] == pytest.approx(1.4 * 0.9, abs=0.1)
    assert g.width[0] == pytest.approx(0.8 * 0.9, abs=0.06)
    assert g.surface[0] == pytest.approx(0.75, abs=0.01)
    assert g.top[0] == pytest.approx(0.75, abs=0.01)
    assert np.isnan(g.surface[1])  # a mug is not a surface
    assert g.size[1] < 0.12
    assert g.bottom[1] == pytest.approx(0.75, abs=0.02)
    assert not g.cut[1] and g.cut[0] and g.cut_top[0]
    # without a floor, heights are unknown but sizes are not
    g0 = measure_segments(seg, np.array([1, 2]), pts, up, floor_z=None)
    assert np.isnan(g0.top).all() and np.isnan(g0.surface).all()
    assert g0.size[0] == pytest.approx(g.size[0])


class _FlatClassifier:
    """An image encoder that has no opinion: equal logits for every ImageNet class."""

    def logits_and_features(self, crops):
        return np.zeros((len(crops), 1000), np.float32), np.ones((len(crops), 8), np.float32) / np.sqrt(8)


def test_the_labeller_names_a_table_top_from_its_geometry_when_the_classifier_has_no_opinion():
    from engram.perception.detectors.rgbd import SegmentLabeller

    lab = SegmentLabeller(encoder=_FlatClassifier())
    rgb = np.zeros((120, 160, 3), np.uint8)
    boxes = np.array([[10, 10, 100, 60], [120, 20, 130, 30]], float)
    geometry = SegmentGeometry(
        size=np.array([1.6, 0.1]),
        width=np.array([0.9, 0.08]),
        top=np.array([0.76, 0.86]),
        bottom=np.array([0.73, 0.76]),
        surface=np.array([0.75, np.nan]),
        level=np.array([True, False]),
        cut_top=np.zeros(2, bool),
        cut=np.zeros(2, bool),
        face=np.zeros(2, bool),
    )
    labels, dists, emb = lab(rgb, boxes, geometry=geometry)
    assert labels[0] == "table"
    assert labels[1] not in {"table", "bed", "sofa", "wardrobe"}
    assert emb is not None and emb.shape == (2, 8)
    # without the prior the flat classifier names nothing
    plain = SegmentLabeller(encoder=_FlatClassifier(), geometry_prior=False)
    assert plain(rgb, boxes, geometry=geometry)[0] == ["object", "object"]


def test_the_rgbd_detector_measures_a_box_standing_on_the_floor():
    import importlib.util
    from pathlib import Path

    from engram.perception.detectors.rgbd import RgbdDetector

    # the ray-cast scene of the detector tests (a 0.4 m box on the floor, a wall behind)
    spec = importlib.util.spec_from_file_location("_scenes", Path(__file__).with_name("test_detectors.py"))
    assert spec is not None and spec.loader is not None
    scenes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scenes)
    frame, truth = scenes._box_on_floor_frame()
    det = RgbdDetector(encoder=None, work_width_px=160)
    det._pose = frame.world_from_camera
    seg, n, step = det.segments(frame)
    on_box = seg[truth[step // 2 :: step, step // 2 :: step]]
    on_box = on_box[on_box > 0]
    assert len(on_box)
    g = det._geometry(seg, np.array([np.bincount(on_box).argmax()]))
    assert g is not None
    assert g.top[0] == pytest.approx(0.4, abs=0.06)  # the box is 0.4 m tall, on the floor at z = 0
    # its lowest visible part: the image's bottom edge cuts the box's front at ~0.33 m
    assert g.bottom[0] == pytest.approx(1.0 - 1.8 * 60 / 160, abs=0.05)
    assert g.cut[0] and not g.cut_top[0]
    assert 0.3 < g.size[0] < 0.5
    assert np.isnan(g.surface[0])  # seen from 1 m up, 2 m away: its top is too thin a sliver


def _box_surface(lo, hi, step=0.025) -> np.ndarray:
    """Points on the six faces of an axis-aligned box."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    out = []
    for ax in range(3):
        other = [a for a in range(3) if a != ax]
        g = np.meshgrid(*[np.arange(lo[a], hi[a] + 1e-9, step) for a in other], indexing="ij")
        for v in (lo[ax], hi[ax]):
            p = np.zeros((g[0].size, 3))
            p[:, ax], p[:, other[0]], p[:, other[1]] = v, g[0].ravel(), g[1].ravel()
            out.append(p)
    return np.concatenate(out)


def test_a_desk_on_a_pedestal_of_drawers_and_a_desk_on_legs_are_both_desks():
    from engram.perception.detectors.priors import measure_object, object_label_weights

    top = _box_surface((0.0, 0.0, 0.71), (1.4, 0.7, 0.75))
    legs = [_box_surface((0.0, y, 0.0), (0.04, y + 0.04, 0.71)) for y in (0.0, 0.66)]
    pedestal = _box_surface((0.98, 0.01, 0.0), (1.4, 0.69, 0.71))  # drawers down to the floor
    on_legs = np.concatenate([top, *legs, *[_box_surface((1.36, y, 0.0), (1.4, y + 0.04, 0.71)) for y in (0.0, 0.66)]])
    with_pedestal = np.concatenate([top, *legs, pedestal])
    assert measure_object(with_pedestal, 0.0).face[0] and not measure_object(on_legs, 0.0).face[0]
    for points in (with_pedestal, on_legs):
        w = object_label_weights(points, 0.0)
        # the prior leaves "desk" its commonness whether a solid face reaches the floor or not
        assert w["desk"] == pytest.approx(CATEGORY_PRIORS["desk"].common * max(w.values()), rel=0.05)
    # a table stands on legs: the pedestal's face still counts against it
    assert object_label_weights(with_pedestal, 0.0)["table"] < 0.5 * object_label_weights(on_legs, 0.0)["table"]


def test_only_open_shelving_shows_boards_at_several_heights():
    from engram.perception.detectors.priors import measure_object, object_label_weights

    def slab(x0, x1, y0, y1, z):
        g = np.meshgrid(np.arange(x0, x1 + 1e-9, 0.025), np.arange(y0, y1 + 1e-9, 0.025), indexing="ij")
        return np.stack([g[0].ravel(), g[1].ravel(), np.full(g[0].size, z)], 1)

    frame = [_box_surface((0.0, 0.33, 0.0), (1.0, 0.35, 1.6))] + [
        _box_surface((x, 0.0, 0.0), (x + 0.02, 0.35, 1.6)) for x in (0.0, 0.98)
    ]
    shelf = np.concatenate(frame + [slab(0.0, 1.0, 0.0, 0.35, z) for z in (0.05, 0.45, 0.85, 1.25, 1.6)])
    cabinet = _box_surface((0.0, 0.0, 0.0), (1.0, 0.45, 0.9))
    sofa = np.concatenate(
        [_box_surface((0.0, 0.0, 0.0), (2.0, 0.9, 0.45)), _box_surface((0.0, 0.7, 0.45), (2.0, 0.9, 0.85))]
    )
    table = np.concatenate(
        [_box_surface((0.0, 0.0, 0.71), (1.4, 0.8, 0.75))]
        + [_box_surface((x, y, 0.0), (x + 0.04, y + 0.04, 0.71)) for x in (0.0, 1.36) for y in (0.0, 0.76)]
    )
    assert measure_object(shelf, 0.0).boards[0] == 4  # the bottom board lies too low to count
    for points in (cabinet, sofa, table):
        assert measure_object(points, 0.0).boards[0] == 1
    w = object_label_weights(shelf, 0.0)
    assert w["cabinet"] < 0.3 * w["shelf"] and w["wardrobe"] < 0.3 * w["shelf"]
    assert object_label_weights(cabinet, 0.0)["cabinet"] == pytest.approx(1.0)
    # without a floor the boards are counted from the object's own bottom
    assert measure_object(shelf + [0.0, 0.0, 3.0], None).boards[0] == 4
    # one face seen from the front with ledges along it (a kitchen counter's drawers): each ledge
    # spans the thin footprint, so the boards are not told there
    g = np.meshgrid(np.arange(0.0, 1.6 + 1e-9, 0.025), np.arange(0.0, 0.9 + 1e-9, 0.025), indexing="ij")
    face = np.stack([g[0].ravel(), np.zeros(g[0].size), g[1].ravel()], 1)
    front = np.concatenate([face] + [slab(0.0, 1.6, 0.0, 0.14, z) for z in (0.3, 0.6, 0.88)])
    assert measure_object(front, 0.0, board_min_width_m=0.0).boards[0] == 3
    assert np.isnan(measure_object(front, 0.0).boards[0])
