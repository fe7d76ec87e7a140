"""Object labels from many views: the crops' votes weighed by the geometric prior on the fused object."""

from __future__ import annotations

import numpy as np
import pytest

from engram.memory.objects import ObjectMap
from engram.perception.segmentation import Detection


def _det(points: np.ndarray, label: str, label_scores: dict[str, float] | None, embedding=None) -> Detection:
    pts = np.asarray(points, np.float32)
    return Detection(
        0,
        label,
        1.0,
        len(pts),
        pts,
        np.zeros_like(pts, dtype=np.uint8),
        (0, 0, 1, 1),
        label_scores=label_scores,
        embedding=embedding,
    )


def _grid(lo, hi, step=0.025) -> np.ndarray:
    """Points on an axis-aligned box face (one coordinate of lo and hi equal) or slab."""
    axes = [np.arange(a, b + 1e-9, step) if b > a else np.array([a]) for a, b in zip(lo, hi)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _sofa(x0: float = 0.0) -> np.ndarray:
    """A 2 m sofa standing on the floor (z = 0): solid front, seat at 0.45 m, back up to 0.85 m."""
    return np.concatenate(
        [
            _grid((x0, 0.0, 0.02), (x0 + 2.0, 0.0, 0.45)),  # front of the base
            _grid((x0, 0.0, 0.45), (x0 + 2.0, 0.7, 0.45)),  # seat
            _grid((x0, 0.7, 0.45), (x0 + 2.0, 0.7, 0.85)),  # front of the back
            _grid((x0, 0.7, 0.85), (x0 + 2.0, 0.9, 0.85)),  # top of the back
        ]
    )


def _cup(centre) -> np.ndarray:
    g = np.arange(-0.04, 0.04 + 1e-9, 0.02)
    return np.stack(np.meshgrid(g, g, g + 0.05), -1).reshape(-1, 3) + np.asarray(centre)


# what the crops of both say: a cup, most likely; a sofa, a distant second
CROPS = {"cup": 0.5, "sofa": 0.2, "box": 0.1}


def test_a_sofa_sized_object_is_a_sofa_even_when_its_crops_say_cup():
    omap = ObjectMap(floor_z_m=0.0)
    emb = np.ones(8, np.float32) / np.sqrt(8)
    for t in range(4):
        ids = omap.update(
            [_det(_sofa(), "cup", CROPS, embedding=emb), _det(_cup((4.0, 0.0, 0.75)), "cup", CROPS)], t, float(t)
        )
    sofa, cup = omap.objects[ids[0]], omap.objects[ids[1]]
    assert sofa.label == "cup"  # the weights wait for the periodic pass (or a save, or a query)
    omap.refresh_labels()
    assert sofa.label == "sofa"
    assert cup.label == "cup"  # the same votes on a cup-sized object
    # the crops' evidence and the embedding stay, so text and image queries still see them
    assert set(sofa.label_votes) == set(CROPS) and sofa.label_votes["cup"] > sofa.label_votes["sofa"]
    assert sofa.embedding is not None
    assert sofa.label_weights is not None and sofa.label_weights["sofa"] > 5 * sofa.label_weights["cup"]
    assert [o.id for o in omap.by_label("sofa")] == [sofa.id]


def test_the_label_follows_the_fused_box_as_views_add_to_it():
    omap = ObjectMap(floor_z_m=0.0)
    # the first view sees one end of the sofa, 0.7 m of it: nothing rules out a big box
    whole = _sofa()
    piece = whole[whole[:, 0] <= 0.7]
    (oid,) = omap.update([_det(piece, "box", {"box": 0.5, "sofa": 0.3})], 0, 0.0)
    omap.refresh_labels()
    assert omap.objects[oid].label == "box"
    for t in range(1, 4):  # then the whole sofa, with the same opinion from its crops
        assert omap.update([_det(whole, "box", {"box": 0.5, "sofa": 0.3})], t, float(t)) == [oid]
    omap.merge_duplicates()  # the periodic pass works the weights out
    assert omap.objects[oid].label == "sofa"


def test_simulator_labels_are_not_weighed_and_records_keep_the_weights():
    omap = ObjectMap(floor_z_m=0.0)
    # a detection without a label distribution (simulator masks): its label is taken as it is
    (plain,) = omap.update([_det(_sofa(), "cup", None)], 0, 0.0)
    (weighed,) = omap.update([_det(_sofa(x0=5.0), "cup", CROPS)], 1, 1.0)
    omap.refresh_labels()
    assert omap.objects[plain].label_weights is None and omap.objects[plain].label == "cup"
    assert omap.objects[weighed].label == "sofa"
    loaded = ObjectMap.from_records(omap.to_records())  # no floor known yet: the saved weights stand
    assert {o.id: o.label for o in loaded.objects.values()} == {plain: "cup", weighed: "sofa"}
    assert loaded.objects[weighed].label_weights == omap.objects[weighed].label_weights
    loaded.merge_duplicates()  # rebuilds the index, which looks at every object
    assert loaded.objects[weighed].label == "sofa"


def test_records_with_bad_label_weights_are_refused():
    omap = ObjectMap(floor_z_m=0.0)
    omap.update([_det(_sofa(), "cup", CROPS)], 0, 0.0)
    for bad in ({"sofa": float("nan")}, {"sofa": -1.0}, ["sofa"], 3.0):
        records = omap.to_records()
        records[0]["label_weights"] = bad
        with pytest.raises(ValueError, match="label_weights"):
            ObjectMap.from_records(records)


def test_room_weights_multiply_into_the_label_and_keep_with_the_records():
    omap = ObjectMap(floor_z_m=0.0)
    (oid,) = omap.update([_det(_sofa(), "cup", CROPS)], 0, 0.0)
    omap.refresh_labels()
    sofa = omap.objects[oid]
    own = dict(sofa.own_posterior)
    assert sofa.label == "sofa" and sofa.label_posterior == own  # no room context yet
    # a room that makes boxes likely (an invented weight, as room_context would give) names it box
    sofa.room_weights = {"box": 1e6}
    assert sofa.label == "box"
    assert sofa.own_posterior == own  # what the object alone says is unchanged
    assert sofa.label_posterior == {lab: v * (1e6 if lab == "box" else 1.0) for lab, v in own.items()}
    loaded = ObjectMap.from_records(omap.to_records())
    assert loaded.objects[oid].room_weights == {"box": 1e6} and loaded.objects[oid].label == "box"
    for bad in ({"box": float("inf")}, {"box": -2.0}, ["box"]):
        records = omap.to_records()
        records[0]["room_weights"] = bad
        with pytest.raises(ValueError, match="room_weights"):
            ObjectMap.from_records(records)
    records = omap.to_records()
    del records[0]["room_weights"]  # saved before rooms weighed labels
    assert ObjectMap.from_records(records).objects[oid].room_weights is None


def _cabinet(x0: float) -> np.ndarray:
    """The front and top of a 0.8 m x 0.45 m cabinet, 0.9 m high, standing on the floor."""
    return np.concatenate([_grid((x0, 0.0, 0.02), (x0 + 0.8, 0.0, 0.9)), _grid((x0, 0.0, 0.9), (x0 + 0.8, 0.45, 0.9))])


def test_of_two_objects_with_the_name_asked_for_the_surer_one_ranks_first():
    from engram.memory.scene import SceneMemory

    mem = SceneMemory(floor_z_m=0.0)
    # both end up "cabinet"; the first after five views that half said "box", the second after two sure ones
    unsure, sure = {"cabinet": 0.5, "box": 0.45}, {"cabinet": 0.9, "box": 0.05}
    for t in range(5):
        views = [_det(_cabinet(0.0), "cabinet", unsure)] + ([_det(_cabinet(3.0), "cabinet", sure)] if t < 2 else [])
        ids = mem.objects.update(views, t, float(t))
        if t == 0:
            first, second = ids
    assert {mem.objects.get(i).label for i in (first, second)} == {"cabinet"}
    hits = mem.query(text="cabinet", kinds=("object",), k=5)
    assert [h.id for h in hits] == [second, first]
    shares = [h.evidence["label_share"] for h in hits]
    assert shares[0] > 0.8 > 0.6 > shares[1] > 0.4
    # both still score as the word itself (1.0), the surer one a little more: the tie-break takes
    # nothing away, so what reaches a threshold still does
    assert 1.0 <= hits[1].score < hits[0].score <= 1.01


def _shelving(closed: bool) -> np.ndarray:
    """A 1.0 x 0.35 x 1.6 m unit against a wall (y = 0.35), seen from the room: an open shelf
    (two sides, a back, boards at 0.05, 0.45, 0.85 and 1.25 m and a top) or, ``closed``, a
    cabinet of the same size (a front face, two sides and a top)."""
    sides = [_grid((x, 0.0, 0.0), (x, 0.35, 1.6)) for x in (0.0, 1.0)]
    top = _grid((0.0, 0.0, 1.6), (1.0, 0.35, 1.6))
    if closed:
        return np.concatenate([_grid((0.0, 0.0, 0.0), (1.0, 0.0, 1.6)), *sides, top])
    boards = [_grid((0.0, 0.0, z), (1.0, 0.35, z)) for z in (0.05, 0.45, 0.85, 1.25)]
    return np.concatenate([_grid((0.0, 0.35, 0.0), (1.0, 0.35, 1.6)), *sides, *boards, top])


def test_open_shelving_that_the_crops_call_a_cabinet_is_a_shelf_and_a_cabinet_stays_one():
    # what an ImageNet classifier says of both: a cabinet, or a box (it has no "shelf" class)
    crops = {"cabinet": 0.6, "box": 0.2}
    labels = {}
    for closed in (False, True):
        omap = ObjectMap(floor_z_m=0.0)
        for t in range(3):
            (oid,) = omap.update([_det(_shelving(closed), "cabinet", crops)], t, float(t))
        omap.refresh_labels()
        obj = omap.objects[oid]
        labels[closed] = obj.label
        # the votes stay the crops' own: only the label reads them through the shape
        assert set(obj.label_votes) == set(crops)
    assert labels == {False: "shelf", True: "cabinet"}


def test_a_ruled_out_vote_passes_only_to_related_words_the_shape_fits_well():
    from engram.memory.objects import _shift_ruled_out

    votes = {"cabinet": 4.0, "box": 1.0}
    # the shape rules "cabinet" mostly out; of its related words, "bookcase" fits, "shelf" hardly
    weights = {"cabinet": 0.2, "bookcase": 1.0, "shelf": 0.3, "wardrobe": 0.9, "box": 1.0}
    out = _shift_ruled_out(votes, weights)
    assert sum(out.values()) == pytest.approx(sum(votes.values()))  # votes move, none are made
    assert "shelf" not in out and out["box"] == 1.0  # a poor fit gets nothing; a fitting word keeps its own
    assert out["cabinet"] == pytest.approx(4.0 * 0.2)
    assert out["bookcase"] == pytest.approx(3.2 * 1.0 / 1.9) and out["wardrobe"] == pytest.approx(3.2 * 0.9 / 1.9)
    # a word the shape fits keeps every vote
    assert _shift_ruled_out({"cabinet": 4.0}, {"cabinet": 1.0, "bookcase": 1.0}) == {"cabinet": 4.0}
