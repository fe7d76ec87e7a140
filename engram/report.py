"""Run reports: a top-down map picture and a self-contained report.html.

Reads a SceneMemory (and optional trajectory, goals and metrics) and writes
PNGs, metrics.json and an HTML page that opens in any browser with no server.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["topdown_image", "write_report"]

_PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (170, 110, 40),
        (128, 0, 0),
    ],
    np.uint8,
)


def _color(i: int) -> tuple[int, int, int]:
    c = _PALETTE[i % len(_PALETTE)]
    return int(c[0]), int(c[1]), int(c[2])


def topdown_image(memory, trajectory_xy=None, goals_xy=None, scale: int = 4, robot_radius_m: float = 0.2) -> np.ndarray:
    """An RGB top-down picture: occupancy grid, trajectory (blue), objects (labelled dots), frontiers (orange)."""
    import cv2

    from engram.planners.frontier import grid_frontiers
    from engram.planners.navigation import TraversabilityGrid

    grid = TraversabilityGrid.from_octree(
        memory.octree, floor_z_m=getattr(memory, "floor_z_m", 0.0), robot_radius_m=robot_radius_m
    )
    img = grid.to_image()
    img = cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    h = img.shape[0]

    def px(xy):
        rc = (np.asarray(xy, float)[..., :2] - grid.origin_xy) / grid.resolution_m * scale
        return np.stack([rc[..., 0], h - rc[..., 1]], -1).astype(np.int32)

    for fr in grid_frontiers(grid):
        for p in px(grid.cell_to_world(fr.cells)):
            cv2.circle(img, tuple(int(v) for v in p), 1, (255, 140, 0), -1)
    if trajectory_xy is not None and len(trajectory_xy) > 1:
        cv2.polylines(img, [px(np.asarray(trajectory_xy))], False, (30, 90, 220), 2)
    for g in goals_xy or []:
        cv2.drawMarker(img, tuple(int(v) for v in px(g)), (200, 0, 0), cv2.MARKER_CROSS, 10, 2)
    labels = sorted({o.label for o in memory.objects.objects.values()})
    for o in memory.objects.objects.values():
        p = tuple(int(v) for v in px(np.asarray(o.centroid)))
        col = _color(labels.index(o.label))
        cv2.circle(img, p, 5, col, -1)
        cv2.putText(img, o.label, (p[0] + 6, p[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (20, 20, 20), 1, cv2.LINE_AA)
    return img


def _png_b64(rgb: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return base64.b64encode(buf.tobytes()).decode()


def write_report(
    out_dir: str | Path,
    memory,
    *,
    metrics: dict[str, Any],
    trajectory_xy=None,
    goals_xy=None,
    episodes: list[dict[str, Any]] | None = None,
    title: str = "engram run",
    max_snapshots: int = 24,
) -> Path:
    """Write topdown.png, snapshots/*.jpg, metrics.json and report.html into ``out_dir``."""
    import cv2

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top = topdown_image(memory, trajectory_xy, goals_xy)
    cv2.imwrite(str(out / "topdown.png"), cv2.cvtColor(top, cv2.COLOR_RGB2BGR))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))

    snap_dir = out / "snapshots"
    snap_dir.mkdir(exist_ok=True)
    snaps_html = []
    objs = memory.objects.objects
    for snap in list(memory.snapshots.snapshots)[:max_snapshots]:
        data = getattr(snap, "image_jpeg", None)
        if not data:
            continue
        name = f"snapshot_{int(snap.frame_index):05d}.jpg"
        (snap_dir / name).write_bytes(data)
        labels = ", ".join(sorted(objs[i].label for i in snap.object_ids if i in objs))
        b64 = base64.b64encode(data).decode()
        snaps_html.append(
            f'<figure><img src="data:image/jpeg;base64,{b64}"><figcaption>frame {int(snap.frame_index)}'
            f" · t={float(snap.timestamp_s):.1f}s<br>{html.escape(labels)}</figcaption></figure>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(round(v, 4) if isinstance(v, float) else v))}</td></tr>"
        for k, v in metrics.items()
        if not isinstance(v, (dict, list))
    )
    ep_rows = ""
    for ep in episodes or []:
        ep_rows += (
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(ep.get(k, '')))}</td>" for k in ("goal", "status", "success", "steps", "message")
            )
            + "</tr>"
        )
    obj_rows = "".join(
        f"<tr><td>{o.id}</td><td>{html.escape(o.label)}</td><td>{np.round(np.asarray(o.centroid), 2).tolist()}</td>"
        f"<td>{float(o.first_seen_s):.1f}–{float(o.last_seen_s):.1f}</td></tr>"
        for o in sorted(objs.values(), key=lambda o: o.label)
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px}} figure{{display:inline-block;margin:4px;font-size:12px;width:180px}}
figure img{{width:176px}} .map img{{max-width:100%;border:1px solid #888}}</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Metrics</h2><table>{rows}</table>
<h2>Top-down map</h2><p>White: free floor seen; black: obstacles; grey: unknown; blue: trajectory;
orange: frontiers; red crosses: navigation goals; dots: objects in memory.</p>
<div class="map"><img src="data:image/png;base64,{_png_b64(top)}"></div>
<h2>Navigation episodes</h2><table><tr><th>goal</th><th>status</th><th>success</th><th>steps</th><th>message</th></tr>{ep_rows}</table>
<h2>Memory snapshots ({len(memory.snapshots.snapshots)})</h2>{"".join(snaps_html)}
<h2>Objects ({len(objs)})</h2><table><tr><th>id</th><th>label</th><th>centroid (m)</th><th>seen (s)</th></tr>{obj_rows}</table>
</body></html>"""
    (out / "report.html").write_text(page)
    return out / "report.html"
