"""Many sources at once: parallel indexing on Ray, one catalogue to search them all.

`build_index` turns every video, RGB-D folder and ROS bag it is given into
its own memory (the video memory of `engram.qa.video.VideoQA` for videos, a
`SceneMemory` for RGB-D and bags), in parallel as Ray actors when Ray is
installed (a local runtime sized to the machine, or a cluster by address),
in this process otherwise. Each finished memory is committed to the
catalogue folder with one rename, so a worker killed mid-source leaves
nothing behind that a reader sees, and a rerun skips what is complete. The
catalogue also holds one columnar table (Parquet) of every event, keyframe
and object of every source, and a vector index over their text embeddings;
`Catalogue.search` ranks them across sources with filters on time, position
and source, and `ask_catalogue` answers questions through the usual answerers.

Importing this package is cheap: Ray, pyarrow and faiss load inside the
functions that need them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Catalogue",
    "CatalogueError",
    "CatalogueHit",
    "IndexReport",
    "SourceSpec",
    "ask_catalogue",
    "build_index",
    "expand_sources",
    "is_catalogue",
]

_WHERE = {
    "Catalogue": "engram.fleet.catalogue",
    "CatalogueError": "engram.fleet.catalogue",
    "CatalogueHit": "engram.fleet.catalogue",
    "ask_catalogue": "engram.fleet.catalogue",
    "is_catalogue": "engram.fleet.catalogue",
    "IndexReport": "engram.fleet.index",
    "build_index": "engram.fleet.index",
    "SourceSpec": "engram.fleet.sources",
    "expand_sources": "engram.fleet.sources",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'engram.fleet' has no attribute {name!r}")
