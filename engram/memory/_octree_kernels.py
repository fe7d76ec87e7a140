"""Compiled kernels behind `engram.memory.octree` (private).

Voxels live in *bricks* of 4x4x4 (an octree node two levels above the
leaves): a hash table maps the brick's Morton code to a row of a float32
pool that holds the 64 log-odds, NaN meaning unknown. Morton codes put x in
bit 0, y in bit 1 and z in bit 2 of every triple, which is OctoMap's child
order, so sorted codes are the tree's depth-first order and the code of a
node ``level`` levels up is ``code >> (3 * level)``.

Every function here takes plain arrays, so numba can cache it on disk
(``cache=True``); none loops over points in Python.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
from numba import njit, prange

# The parallel kernels' threading layer: OpenMP before TBB. numba tries TBB first, and a process
# that has loaded an older libtbb (open3d ships one, imported for `engram map`'s mesh) then gets
# a warning on every run before numba falls back to OpenMP anyway. A layer the user chose through
# numba's environment variables is kept.
if not {"NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY"} & set(os.environ):
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]  # type: ignore[attr-defined]

KEY_OFFSET = 1 << 15  # OctoMap's tree_max_val: key = floor(p / res) + 2**15
KEY_LIMIT = 1 << 16  # 16 levels
BRICK_BITS = 6  # 64 voxels per brick: 2 octree levels
BRICK_SIZE = 1 << BRICK_BITS
EMPTY = -1  # empty hash slot

# ray kinds after preparation
KIND_DROPPED = 0  # NaN / inf coordinate
KIND_OUT_OF_BOUNDS = 1  # outside the 16-bit key space
KIND_HIT = 2  # ends at a surface: endpoint occupied, cells before it free
KIND_MAX_RANGE = 3  # beyond max range: free up to max range, no endpoint
KIND_FREE_END = 4  # a ray toward a moving body: its end cell is freed too, unless an endpoint holds it

_FIB = np.uint64(0x9E3779B97F4A7C15)


# Morton codes ---------------------------------------------------------------
@njit(cache=True, inline="always")
def _spread(v):
    v = v & 0xFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    v = (v | (v << 2)) & 0x1249249249249249
    return v


@njit(cache=True, inline="always")
def _compact(v):
    v = v & 0x1249249249249249
    v = (v ^ (v >> 2)) & 0x10C30C30C30C30C3
    v = (v ^ (v >> 4)) & 0x100F00F00F00F00F
    v = (v ^ (v >> 8)) & 0x1F0000FF0000FF
    v = (v ^ (v >> 16)) & 0x1F00000000FFFF
    v = (v ^ (v >> 32)) & 0x1FFFFF
    return v


@njit(cache=True, inline="always")
def _encode(kx, ky, kz):
    return _spread(np.int64(kx)) | (_spread(np.int64(ky)) << 1) | (_spread(np.int64(kz)) << 2)


@njit(cache=True, parallel=True)
def encode_keys(keys):
    """(N, 3) int64 OctoMap keys (0 .. 2**16-1) -> (N,) int64 Morton codes."""
    n = keys.shape[0]
    out = np.empty(n, np.int64)
    for i in prange(n):
        out[i] = _encode(keys[i, 0], keys[i, 1], keys[i, 2])
    return out


@njit(cache=True, parallel=True)
def decode_codes(codes):
    """(N,) Morton codes -> (N, 3) int64 keys (at whatever level the codes are)."""
    n = codes.shape[0]
    out = np.empty((n, 3), np.int64)
    for i in prange(n):
        c = codes[i]
        out[i, 0] = _compact(c)
        out[i, 1] = _compact(c >> 1)
        out[i, 2] = _compact(c >> 2)
    return out


# brick hash table -----------------------------------------------------------
@njit(cache=True, inline="always")
def _slot_of(tkeys, shift, brick):
    """Index of ``brick`` in the table, or -(index + 1) of the empty slot where it would go."""
    mask = tkeys.shape[0] - 1
    i = np.int64((np.uint64(brick) * _FIB) >> np.uint64(shift)) & mask
    while True:
        k = tkeys[i]
        if k == brick:
            return i
        if k == EMPTY:
            return -(i + 1)
        i = (i + 1) & mask


@njit(cache=True, inline="always")
def _claim_slot(tkeys, trows, shift, brick, n_bricks, max_bricks):
    """(slot of ``brick``, bricks in use): a new brick takes storage row ``n_bricks``; slot -1 when it
    would need one and ``n_bricks`` has reached ``max_bricks`` (the caller grows the storage and resumes)."""
    s = _slot_of(tkeys, shift, brick)
    if s < 0:
        if n_bricks >= max_bricks:
            return np.int64(-1), n_bricks
        s = -s - 1
        tkeys[s] = brick
        trows[s] = n_bricks
        n_bricks += 1
    return s, n_bricks


@njit(cache=True, inline="always")
def _value_at(tkeys, trows, shift, pool, code):
    s = _slot_of(tkeys, shift, code >> BRICK_BITS)
    if s < 0:
        return np.float32(np.nan)
    return pool[trows[s] * BRICK_SIZE + (code & (BRICK_SIZE - 1))]


@njit(cache=True)
def rehash(tkeys, trows, new_capacity, new_shift):
    """A table of ``new_capacity`` slots holding the same bricks."""
    nk = np.full(new_capacity, EMPTY, np.int64)
    nr = np.zeros(new_capacity, np.int32)
    for i in range(tkeys.shape[0]):
        b = tkeys[i]
        if b != EMPTY:
            s = -_slot_of(nk, new_shift, b) - 1
            nk[s] = b
            nr[s] = trows[i]
    return nk, nr


@njit(cache=True)
def add_log_odds(tkeys, trows, shift, pool, n_bricks, max_bricks, codes, deltas, start, lo, hi, before):
    """Add ``deltas[j]`` to voxel ``codes[j]`` for j >= start, clamped to [lo, hi].

    Unknown voxels start at 0, as in OctoMap. Float32 arithmetic, as in
    OctoMap's nodes. Stops early when a new brick is needed and ``n_bricks``
    has reached ``max_bricks`` (the caller grows the storage and resumes).
    When ``before`` has one entry per code, it receives each voxel's value
    before the update (NaN: unknown).

    Returns:
        (next index to process, bricks in use, voxels that became known)
    """
    n_new = 0
    last_brick = np.int64(-1)
    base = np.int64(0)
    trace = before.shape[0] == codes.shape[0]
    for j in range(start, codes.shape[0]):
        c = codes[j]
        b = c >> BRICK_BITS
        if b != last_brick:
            s, n_bricks = _claim_slot(tkeys, trows, shift, b, n_bricks, max_bricks)
            if s < 0:
                return j, n_bricks, n_new
            last_brick = b
            base = np.int64(trows[s]) * BRICK_SIZE
        p = base + (c & (BRICK_SIZE - 1))
        v = pool[p]
        if trace:
            before[j] = v
        if np.isnan(v):
            v = np.float32(0.0)
            n_new += 1
        v = v + deltas[j]
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
        pool[p] = v
    return codes.shape[0], n_bricks, n_new


@njit(cache=True)
def set_log_odds(tkeys, trows, shift, pool, n_bricks, max_bricks, codes, values, start):
    """Set voxel ``codes[j]`` to ``values[j]`` (NaN forgets it); same protocol as `add_log_odds`.

    Returns:
        (next index, bricks in use, change in the number of known voxels)
    """
    n_delta = 0
    for j in range(start, codes.shape[0]):
        c = codes[j]
        b = c >> BRICK_BITS
        v = values[j]
        s = _slot_of(tkeys, shift, b)
        if s < 0:
            if np.isnan(v):
                continue
            if n_bricks >= max_bricks:
                return j, n_bricks, n_delta
            s = -s - 1
            tkeys[s] = b
            trows[s] = n_bricks
            n_bricks += 1
        p = np.int64(trows[s]) * BRICK_SIZE + (c & (BRICK_SIZE - 1))
        old = pool[p]
        if np.isnan(old) and not np.isnan(v):
            n_delta += 1
        elif not np.isnan(old) and np.isnan(v):
            n_delta -= 1
        pool[p] = v
    return codes.shape[0], n_bricks, n_delta


@njit(cache=True, parallel=True)
def lookup_codes(tkeys, trows, shift, pool, codes):
    """Log-odds of voxel codes (NaN unknown; a negative code means outside the key space)."""
    n = codes.shape[0]
    out = np.empty(n, np.float32)
    for i in prange(n):
        c = codes[i]
        if c < 0:
            out[i] = np.nan
        else:
            out[i] = _value_at(tkeys, trows, shift, pool, c)
    return out


@njit(cache=True, inline="always")
def _point_key(x, inv_res):
    """OctoMap's coordToKey along one axis: floor(x / res) + 2**15, or -1 outside the key space."""
    if not math.isfinite(x):
        return np.int64(-1)
    f = math.floor(x * inv_res)
    if f < -KEY_OFFSET or f >= KEY_OFFSET:
        return np.int64(-1)
    return np.int64(f) + KEY_OFFSET


@njit(cache=True, parallel=True)
def point_codes(points, inv_res):
    """Morton codes of the voxels holding ``points`` (N, 3); -1 for non-finite or out-of-range points."""
    n = points.shape[0]
    out = np.empty(n, np.int64)
    for i in prange(n):
        kx = _point_key(points[i, 0], inv_res)
        ky = _point_key(points[i, 1], inv_res)
        kz = _point_key(points[i, 2], inv_res)
        if kx < 0 or ky < 0 or kz < 0:
            out[i] = -1
        else:
            out[i] = _encode(kx, ky, kz)
    return out


@njit(cache=True, parallel=True)
def lookup_points(tkeys, trows, shift, pool, points, inv_res):
    """Log-odds at ``points`` (N, 3) in metres; NaN where unknown or outside the key space."""
    n = points.shape[0]
    out = np.empty(n, np.float32)
    for i in prange(n):
        kx = _point_key(points[i, 0], inv_res)
        ky = _point_key(points[i, 1], inv_res)
        kz = _point_key(points[i, 2], inv_res)
        if kx < 0 or ky < 0 or kz < 0:
            out[i] = np.nan
        else:
            out[i] = _value_at(tkeys, trows, shift, pool, _encode(kx, ky, kz))
    return out


@njit(cache=True)
def extract_sorted(tkeys, trows, pool, n_known):
    """All known voxels as (Morton codes ascending, log-odds)."""
    n_slots = tkeys.shape[0]
    n_b = 0
    for i in range(n_slots):
        if tkeys[i] != EMPTY:
            n_b += 1
    bricks = np.empty(n_b, np.int64)
    rows = np.empty(n_b, np.int64)
    j = 0
    for i in range(n_slots):
        if tkeys[i] != EMPTY:
            bricks[j] = tkeys[i]
            rows[j] = trows[i]
            j += 1
    order = np.argsort(bricks)
    codes = np.empty(n_known, np.int64)
    values = np.empty(n_known, np.float32)
    m = 0
    for jj in range(n_b):
        j = order[jj]
        base = rows[j] * BRICK_SIZE
        b = bricks[j] << BRICK_BITS
        for off in range(BRICK_SIZE):
            v = pool[base + off]
            if not np.isnan(v):
                if m < n_known:
                    codes[m] = b | off
                    values[m] = v
                m += 1
    if m != n_known:
        return codes[:0], values[:0]  # bookkeeping broken: the caller raises
    return codes, values


# scans ------------------------------------------------------------------------
@njit(cache=True, parallel=True)
def prepare_scan(points, origin, inv_res, max_range_m, ends, end_keys, kinds, box):
    """Classify each point, compute where its ray ends, and the scan's key box.

    Rays longer than ``max_range_m`` (if > 0) are cut at max range (OctoMap's
    rule). ``end_keys`` of dropped rays are set to the origin's key.
    """
    n = points.shape[0]
    okx = _point_key(origin[0], inv_res)
    oky = _point_key(origin[1], inv_res)
    okz = _point_key(origin[2], inv_res)
    for i in prange(n):
        x = points[i, 0]
        y = points[i, 1]
        z = points[i, 2]
        kind = KIND_HIT
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
            kind = KIND_DROPPED
        else:
            dx = x - origin[0]
            dy = y - origin[1]
            dz = z - origin[2]
            d2 = dx * dx + dy * dy + dz * dz
            if max_range_m > 0.0 and d2 > max_range_m * max_range_m:
                s = max_range_m / math.sqrt(d2)
                x = origin[0] + dx * s
                y = origin[1] + dy * s
                z = origin[2] + dz * s
                kind = KIND_MAX_RANGE
            kx = _point_key(x, inv_res)
            ky = _point_key(y, inv_res)
            kz = _point_key(z, inv_res)
            if kx < 0 or ky < 0 or kz < 0:
                kind = KIND_OUT_OF_BOUNDS
        kinds[i] = kind
        if kind >= KIND_HIT:
            ends[i, 0] = x
            ends[i, 1] = y
            ends[i, 2] = z
            end_keys[i, 0] = kx
            end_keys[i, 1] = ky
            end_keys[i, 2] = kz
        else:
            ends[i, 0] = origin[0]
            ends[i, 1] = origin[1]
            ends[i, 2] = origin[2]
            end_keys[i, 0] = okx
            end_keys[i, 1] = oky
            end_keys[i, 2] = okz
    # key box of the scan (origin included), as (min x, y, z, max x, y, z)
    lox = okx
    loy = oky
    loz = okz
    hix = okx
    hiy = oky
    hiz = okz
    for i in prange(n):
        lox = min(lox, end_keys[i, 0])
        loy = min(loy, end_keys[i, 1])
        loz = min(loz, end_keys[i, 2])
        hix = max(hix, end_keys[i, 0])
        hiy = max(hiy, end_keys[i, 1])
        hiz = max(hiz, end_keys[i, 2])
    box[0] = lox
    box[1] = loy
    box[2] = loz
    box[3] = hix
    box[4] = hiy
    box[5] = hiz


@njit(cache=True, inline="always")
def _axis_setup(o, d, k, res):
    """Step, first boundary t and t per cell along one axis (OctoMap's computeRayKeys)."""
    if d > 0.0:
        border = (np.float64(k - KEY_OFFSET) + 0.5) * res + 0.5 * res
        return 1, (border - o) / d, res / d
    if d < 0.0:
        border = (np.float64(k - KEY_OFFSET) + 0.5) * res - 0.5 * res
        return -1, (border - o) / d, res / -d
    return 0, np.inf, np.inf


_T_SCALE = float(1 << 40)  # ray parameter (fraction of the ray) in fixed point: integer adds in the inner loop
_T_NEVER = np.int64(1) << np.int64(61)


@njit(cache=True, inline="always")
def _axis_fixed(o, e, k, res):
    """Step, first boundary and per-cell increment along one axis, as fixed-point fractions of the ray."""
    diff = e - o
    if diff == 0.0:
        return np.int64(0), _T_NEVER, np.int64(0)
    inv = 1.0 / diff
    if diff > 0.0:
        border = (np.float64(k - KEY_OFFSET) + 0.5) * res + 0.5 * res
        return np.int64(1), np.int64(min((border - o) * inv, 2.0) * _T_SCALE), np.int64(min(res * inv, 2.0) * _T_SCALE)
    border = (np.float64(k - KEY_OFFSET) + 0.5) * res - 0.5 * res
    return np.int64(-1), np.int64(min((border - o) * inv, 2.0) * _T_SCALE), np.int64(min(-res * inv, 2.0) * _T_SCALE)


@njit(cache=True, inline="always")
def _ray_setup(origin, ends, end_keys, i, okx, oky, okz, res):
    """Fixed-point DDA state of ray ``i`` (OctoMap's computeRayKeys initialisation).

    The ray parameter is the fraction of the way from origin to end (so no
    normalisation is needed), in units of 2**-40; boundaries beyond the end
    are capped at 2 (never reached within the ray's step count).

    Returns:
        (cells from origin cell to end cell, in steps; next x / y / z boundary;
        increment per cell along x / y / z; step signs x / y / z). Zero steps
        when the ray starts and ends in one cell.
    """
    nm = abs(end_keys[i, 0] - okx) + abs(end_keys[i, 1] - oky) + abs(end_keys[i, 2] - okz)
    if nm == 0:
        return (
            0,
            _T_NEVER,
            _T_NEVER,
            _T_NEVER,
            np.int64(0),
            np.int64(0),
            np.int64(0),
            np.int64(0),
            np.int64(0),
            np.int64(0),
        )
    stx, tx, ddx = _axis_fixed(origin[0], ends[i, 0], okx, res)
    sty, ty, ddy = _axis_fixed(origin[1], ends[i, 1], oky, res)
    stz, tz, ddz = _axis_fixed(origin[2], ends[i, 2], okz, res)
    return nm, tx, ty, tz, ddx, ddy, ddz, stx, sty, stz


@njit(cache=True, inline="always")
def _step(tx, ty, tz, ddx, ddy, ddz, ix, iy, iz, idx):
    """One Amanatides-Woo step: cross the nearest boundary (ties go to z, then y, as in OctoMap)."""
    if tx < ty:
        if tx < tz:
            return tx + ddx, ty, tz, idx + ix
        return tx, ty, tz + ddz, idx + iz
    if ty < tz:
        return tx, ty + ddy, tz, idx + iy
    return tx, ty, tz + ddz, idx + iz


@njit(cache=True, inline="always")
def _walk(n_cells, tx, ty, tz, ddx, ddy, ddz, ix, iy, iz, idx, grid, size):
    """Mark ``n_cells`` cells after ``idx`` along a ray (index ``size``: the sentinel); returns the final state."""
    for _ in range(n_cells):
        tx, ty, tz, idx = _step(tx, ty, tz, ddx, ddy, ddz, ix, iy, iz, idx)
        grid[min(np.uint64(idx), size)] = 1
    return tx, ty, tz, idx


@njit(cache=True, inline="always")
def _scan_grid(origin, lo, dims, res, grid):
    """Strides of a scan grid (x, y), its sentinel index, the origin's key and its cell index."""
    sy = np.int64(dims[2])
    sx = np.int64(dims[1]) * sy
    size = np.uint64(grid.shape[0] - 1)  # the last byte is a sentinel, outside the box
    inv_res = 1.0 / res
    okx = _point_key(origin[0], inv_res)
    oky = _point_key(origin[1], inv_res)
    okz = _point_key(origin[2], inv_res)
    o_idx = (okx - lo[0]) * sx + (oky - lo[1]) * sy + (okz - lo[2])
    return sx, sy, size, okx, oky, okz, o_idx


@njit(cache=True, inline="always")
def _mark_ends(kinds, end_keys, lo, sx, sy, grid):
    """End cells after the rays: a freeing ray's end is free (1), an endpoint occupied (2, written last)."""
    for i in range(kinds.shape[0]):
        if kinds[i] == KIND_FREE_END:
            grid[(end_keys[i, 0] - lo[0]) * sx + (end_keys[i, 1] - lo[1]) * sy + (end_keys[i, 2] - lo[2])] = 1
    for i in range(kinds.shape[0]):
        if kinds[i] == KIND_HIT:
            grid[(end_keys[i, 0] - lo[0]) * sx + (end_keys[i, 1] - lo[1]) * sy + (end_keys[i, 2] - lo[2])] = 2


@njit(cache=True, parallel=True)
def mark_scan(origin, ends, end_keys, kinds, lo, dims, res, grid, n_chunks):
    """Mark a scan in a dense byte grid over its key box: 1 crossed by a ray, 2 holds an endpoint.

    ``grid`` has one byte more than the box (a sentinel that collects stray writes).

    A ray frees its origin cell and every cell it enters before its end
    cell: the cells of OctoMap's computeRayKeys (an Amanatides-Woo DDA),
    walked for the Manhattan distance in cells from origin cell to end cell,
    which is where a DDA reaches the end cell. Rays write only the value 1
    (plain stores: concurrent rays cannot lose each other's marks); endpoints
    are written afterwards, so occupied wins over free.

    Four rays are walked in lock step to overlap their dependency chains.

    Returns:
        cell steps taken by the DDA over all rays.
    """
    n = kinds.shape[0]
    sx, sy, size, okx, oky, okz, o_idx = _scan_grid(origin, lo, dims, res, grid)
    chunk = (n + n_chunks - 1) // n_chunks
    chunk = (chunk + 3) // 4 * 4
    total = 0
    for c in prange(n_chunks):
        steps = 0
        stop = min(n, (c + 1) * chunk)
        for i in range(c * chunk, stop, 4):
            na, txa, tya, tza, dxa, dya, dza, sxa, sya, sza = _ray_setup(origin, ends, end_keys, i, okx, oky, okz, res)
            j = min(i + 1, stop - 1)
            nb, txb, tyb, tzb, dxb, dyb, dzb, sxb, syb, szb = _ray_setup(origin, ends, end_keys, j, okx, oky, okz, res)
            j = min(i + 2, stop - 1)
            nc, txc, tyc, tzc, dxc, dyc, dzc, sxc, syc, szc = _ray_setup(origin, ends, end_keys, j, okx, oky, okz, res)
            j = min(i + 3, stop - 1)
            nd, txd, tyd, tzd, dxd, dyd, dzd, sxd, syd, szd = _ray_setup(origin, ends, end_keys, j, okx, oky, okz, res)
            # dropped rays and the duplicates of the chunk's last ray walk nothing
            if kinds[i] < KIND_HIT:
                na = 0
            if i + 1 >= stop or kinds[i + 1] < KIND_HIT:
                nb = 0
            if i + 2 >= stop or kinds[i + 2] < KIND_HIT:
                nc = 0
            if i + 3 >= stop or kinds[i + 3] < KIND_HIT:
                nd = 0
            if na + nb + nc + nd == 0:
                continue
            grid[o_idx] = 1
            steps += na + nb + nc + nd
            ixa, iya = sxa * sx, sya * sy
            ixb, iyb = sxb * sx, syb * sy
            ixc, iyc = sxc * sx, syc * sy
            ixd, iyd = sxd * sx, syd * sy
            a = o_idx
            b = o_idx
            e = o_idx
            d = o_idx
            m = max(min(min(na, nb), min(nc, nd)) - 1, 0)
            for _ in range(m):
                txa, tya, tza, a = _step(txa, tya, tza, dxa, dya, dza, ixa, iya, sza, a)
                txb, tyb, tzb, b = _step(txb, tyb, tzb, dxb, dyb, dzb, ixb, iyb, szb, b)
                txc, tyc, tzc, e = _step(txc, tyc, tzc, dxc, dyc, dzc, ixc, iyc, szc, e)
                txd, tyd, tzd, d = _step(txd, tyd, tzd, dxd, dyd, dzd, ixd, iyd, szd, d)
                # a cell outside the box (only if rounding bent a ray) lands on the sentinel byte
                grid[min(np.uint64(a), size)] = 1
                grid[min(np.uint64(b), size)] = 1
                grid[min(np.uint64(e), size)] = 1
                grid[min(np.uint64(d), size)] = 1
            _walk(na - 1 - m, txa, tya, tza, dxa, dya, dza, ixa, iya, sza, a, grid, size)
            _walk(nb - 1 - m, txb, tyb, tzb, dxb, dyb, dzb, ixb, iyb, szb, b, grid, size)
            _walk(nc - 1 - m, txc, tyc, tzc, dxc, dyc, dzc, ixc, iyc, szc, e, grid, size)
            _walk(nd - 1 - m, txd, tyd, tzd, dxd, dyd, dzd, ixd, iyd, szd, d, grid, size)
        total += steps
    _mark_ends(kinds, end_keys, lo, sx, sy, grid)
    return total


@njit(cache=True, parallel=True)
def mark_scan_serial(origin, ends, end_keys, kinds, lo, dims, res, grid, n_chunks):
    """`mark_scan` walking one ray at a time: the same marks and step count.

    Which of the two is faster depends on the core (how it predicts the
    DDA's branches and overlaps the rays' dependency chains); the octree
    times both on its first scans and keeps the faster.
    """
    n = kinds.shape[0]
    sx, sy, size, okx, oky, okz, o_idx = _scan_grid(origin, lo, dims, res, grid)
    chunk = (n + n_chunks - 1) // n_chunks
    total = 0
    for c in prange(n_chunks):
        steps = 0
        stop = min(n, (c + 1) * chunk)
        for i in range(c * chunk, stop):
            na, tx, ty, tz, dx, dy, dz, sxa, sya, sza = _ray_setup(origin, ends, end_keys, i, okx, oky, okz, res)
            if kinds[i] < KIND_HIT or na == 0:
                continue
            grid[o_idx] = 1
            steps += na
            _walk(na - 1, tx, ty, tz, dx, dy, dz, sxa * sx, sya * sy, sza, o_idx, grid, size)
        total += steps
    _mark_ends(kinds, end_keys, lo, sx, sy, grid)
    return total


@njit(cache=True, parallel=True)
def collect_marks(grid, lo, dims):
    """Morton codes of the free (1) and occupied (2) cells of a scan grid (the sentinel byte is ignored)."""
    nx = dims[0]
    slab = np.int64(dims[1]) * dims[2]
    n_free = np.zeros(nx, np.int64)
    n_occ = np.zeros(nx, np.int64)
    for x in prange(nx):
        f = 0
        o = 0
        base = x * slab
        for j in range(slab):
            g = grid[base + j]
            if g == 1:
                f += 1
            elif g >= 2:
                o += 1
        n_free[x] = f
        n_occ[x] = o
    f_start = np.zeros(nx + 1, np.int64)
    o_start = np.zeros(nx + 1, np.int64)
    for x in range(nx):
        f_start[x + 1] = f_start[x] + n_free[x]
        o_start[x + 1] = o_start[x] + n_occ[x]
    free_codes = np.empty(f_start[nx], np.int64)
    occ_codes = np.empty(o_start[nx], np.int64)
    ny = dims[1]
    nz = dims[2]
    for x in prange(nx):
        f = f_start[x]
        o = o_start[x]
        base = x * slab
        kx = lo[0] + x
        for y in range(ny):
            ky = lo[1] + y
            row = base + y * nz
            for z in range(nz):
                g = grid[row + z]
                if g == 0:
                    continue
                code = _encode(kx, ky, lo[2] + z)
                if g == 1:
                    free_codes[f] = code
                    f += 1
                else:
                    occ_codes[o] = code
                    o += 1
    return free_codes, occ_codes


@njit(cache=True, parallel=True)
def count_ray_steps(origin, ends, end_keys, kinds, res):
    """Number of free cells each ray emits (origin cell and cells before the end cell)."""
    n = kinds.shape[0]
    counts = np.zeros(n, np.int64)
    okx = _point_key(origin[0], 1.0 / res)
    oky = _point_key(origin[1], 1.0 / res)
    okz = _point_key(origin[2], 1.0 / res)
    for i in prange(n):
        if kinds[i] >= KIND_HIT:
            counts[i] = abs(end_keys[i, 0] - okx) + abs(end_keys[i, 1] - oky) + abs(end_keys[i, 2] - okz)
    return counts


@njit(cache=True, parallel=True)
def fill_ray_codes(origin, ends, end_keys, kinds, res, offsets, out):
    """Write each ray's free-cell Morton codes at ``out[offsets[i]:]``: the same cells `mark_scan` marks."""
    n = kinds.shape[0]
    okx = _point_key(origin[0], 1.0 / res)
    oky = _point_key(origin[1], 1.0 / res)
    okz = _point_key(origin[2], 1.0 / res)
    for i in prange(n):
        if kinds[i] < KIND_HIT:
            continue
        nm, tx, ty, tz, ddx, ddy, ddz, stx, sty, stz = _ray_setup(origin, ends, end_keys, i, okx, oky, okz, res)
        if nm == 0:
            continue
        o = offsets[i]
        kx = okx
        ky = oky
        kz = okz
        out[o] = _encode(kx, ky, kz)
        for m in range(1, nm):
            if tx < ty:
                if tx < tz:
                    kx += stx
                    tx += ddx
                else:
                    kz += stz
                    tz += ddz
            elif ty < tz:
                ky += sty
                ty += ddy
            else:
                kz += stz
                tz += ddz
            out[o + m] = _encode(
                min(max(kx, 0), KEY_LIMIT - 1), min(max(ky, 0), KEY_LIMIT - 1), min(max(kz, 0), KEY_LIMIT - 1)
            )


# depth images -------------------------------------------------------------------
@njit(cache=True, inline="always")
def _cached_value(tkeys, trows, shift, pool, code, last_brick, last_base):
    """Log-odds at ``code`` reusing the previous brick's row (neighbouring pixels share bricks)."""
    b = code >> BRICK_BITS
    if b != last_brick:
        last_brick = b
        s = _slot_of(tkeys, shift, b)
        last_base = np.int64(-1) if s < 0 else np.int64(trows[s]) * BRICK_SIZE
    if last_base < 0:
        return np.float32(np.nan), last_brick, last_base
    return pool[last_base + (code & (BRICK_SIZE - 1))], last_brick, last_base


@njit(cache=True)
def depth_codes(
    depth,
    stride,
    fx,
    fy,
    cx,
    cy,
    world_from_camera,
    inv_res,
    beyond_m,
    beyond_below,
    tkeys,
    trows,
    shift,
    pool,
    want_log_odds,
    pixels,
    codes,
    log_odds,
):
    """One pass from depth pixels to the Morton codes of their endpoint voxels.

    Every ``stride``-th pixel with a finite depth above 0 is back-projected
    (OpenCV pinhole, pixel centres at integer coordinates), moved to the
    world frame and keyed; nothing is stored in between. With
    ``want_log_odds`` it also reads the map as it was before this frame: the
    larger of the log-odds at the endpoint and at the point ``beyond_m``
    farther along the ray (NaN when either is unknown), which the
    static/dynamic split needs. The point beyond is only read where the
    endpoint's value is at most ``beyond_below`` (elsewhere the larger value
    is above it too, and the endpoint's value is stored).

    Returns:
        number of valid pixels n; ``pixels[:n]`` (flat index v * W + u),
        ``codes[:n]`` (-1 outside the key space) and ``log_odds[:n]`` are filled.
    """
    h = depth.shape[0]
    w = depth.shape[1]
    m = world_from_camera
    ox = m[0, 3]
    oy = m[1, 3]
    oz = m[2, 3]
    n = 0
    lb_a = np.int64(-2)
    base_a = np.int64(-1)
    lb_b = np.int64(-2)
    base_b = np.int64(-1)
    for v in range(0, h, stride):
        yn = (np.float64(v) - cy) / fy
        for u in range(0, w, stride):
            z = np.float64(depth[v, u])
            if not (z > 0.0 and z < np.inf):
                continue
            xc = (np.float64(u) - cx) / fx * z
            yc = yn * z
            wx = m[0, 0] * xc + m[0, 1] * yc + m[0, 2] * z + ox
            wy = m[1, 0] * xc + m[1, 1] * yc + m[1, 2] * z + oy
            wz = m[2, 0] * xc + m[2, 1] * yc + m[2, 2] * z + oz
            kx = _point_key(wx, inv_res)
            ky = _point_key(wy, inv_res)
            kz = _point_key(wz, inv_res)
            code = np.int64(-1)
            if kx >= 0 and ky >= 0 and kz >= 0:
                code = _encode(kx, ky, kz)
            pixels[n] = v * w + u
            codes[n] = code
            if want_log_odds:
                va = np.float32(np.nan)
                vb = np.float32(np.nan)
                if code >= 0:
                    va, lb_a, base_a = _cached_value(tkeys, trows, shift, pool, code, lb_a, base_a)
                if va > beyond_below:
                    log_odds[n] = va
                    n += 1
                    continue
                if not np.isnan(va):
                    dx = wx - ox
                    dy = wy - oy
                    dz = wz - oz
                    s = beyond_m / max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-9)
                    bx = _point_key(wx + dx * s, inv_res)
                    by = _point_key(wy + dy * s, inv_res)
                    bz = _point_key(wz + dz * s, inv_res)
                    if bx >= 0 and by >= 0 and bz >= 0:
                        vb, lb_b, base_b = _cached_value(tkeys, trows, shift, pool, _encode(bx, by, bz), lb_b, base_b)
                log_odds[n] = max(va, vb) if not (np.isnan(va) or np.isnan(vb)) else np.float32(np.nan)
            n += 1
    return n


@njit(cache=True)
def unique_codes(codes, mask):
    """The distinct non-negative ``codes[i]`` with ``mask[i]``, in order of first appearance (a hash set)."""
    n = codes.shape[0]
    bits = 10
    while (1 << bits) < 2 * n:
        bits += 1
    table = np.full(1 << bits, EMPTY, np.int64)
    shift = 64 - bits
    out = np.empty(n, np.int64)
    m = 0
    last = np.int64(-1)
    for i in range(n):
        c = codes[i]
        if c < 0 or not mask[i] or c == last:
            continue
        last = c
        s = -_slot_of(table, shift, c) - 1
        if s >= 0:
            table[s] = c
            out[m] = c
            m += 1
    return out[:m]


@njit(cache=True)
def prepare_targets(codes, target_kinds, origin, res, max_range_m, ends, end_keys, kinds, box):
    """Rays to voxel centres (OctoMap's ``discretize``): end points, keys, kinds and the key box.

    ``target_kinds`` is KIND_HIT (the voxel holds an endpoint) or
    KIND_FREE_END (the ray frees its end voxel too). A centre farther than
    ``max_range_m`` (if > 0) is cut at max range and becomes KIND_MAX_RANGE.
    """
    inv_res = 1.0 / res
    okx = _point_key(origin[0], inv_res)
    oky = _point_key(origin[1], inv_res)
    okz = _point_key(origin[2], inv_res)
    box[0] = okx
    box[1] = oky
    box[2] = okz
    box[3] = okx
    box[4] = oky
    box[5] = okz
    for i in range(codes.shape[0]):
        c = codes[i]
        kx = _compact(c)
        ky = _compact(c >> 1)
        kz = _compact(c >> 2)
        x = (np.float64(kx - KEY_OFFSET) + 0.5) * res
        y = (np.float64(ky - KEY_OFFSET) + 0.5) * res
        z = (np.float64(kz - KEY_OFFSET) + 0.5) * res
        kind = target_kinds[i]
        dx = x - origin[0]
        dy = y - origin[1]
        dz = z - origin[2]
        d2 = dx * dx + dy * dy + dz * dz
        if max_range_m > 0.0 and d2 > max_range_m * max_range_m:
            s = max_range_m / math.sqrt(d2)
            x = origin[0] + dx * s
            y = origin[1] + dy * s
            z = origin[2] + dz * s
            kind = KIND_MAX_RANGE
            kx = _point_key(x, inv_res)
            ky = _point_key(y, inv_res)
            kz = _point_key(z, inv_res)
            if kx < 0 or ky < 0 or kz < 0:
                kind = KIND_OUT_OF_BOUNDS
                x = origin[0]
                y = origin[1]
                z = origin[2]
                kx = okx
                ky = oky
                kz = okz
        kinds[i] = kind
        ends[i, 0] = x
        ends[i, 1] = y
        ends[i, 2] = z
        end_keys[i, 0] = kx
        end_keys[i, 1] = ky
        end_keys[i, 2] = kz
        box[0] = min(box[0], kx)
        box[1] = min(box[1], ky)
        box[2] = min(box[2], kz)
        box[3] = max(box[3], kx)
        box[4] = max(box[4], ky)
        box[5] = max(box[5], kz)


@njit(cache=True, inline="always")
def _band_cell_of_key(kx, ky, kz, level, size, z_lo, z_hi):
    """Is voxel key (kx, ky, kz) in the height band (by its level-``level`` node's centre), and that node's (x, y)."""
    off = KEY_OFFSET >> level
    zc = (np.float64((kz >> level) - off) + 0.5) * size
    if zc < z_lo or zc > z_hi:
        return False, np.int64(0), np.int64(0)
    return True, (kx >> level) - off, (ky >> level) - off


@njit(cache=True, inline="always")
def _band_cell(c, level, size, z_lo, z_hi):
    """`_band_cell_of_key` of voxel code ``c``."""
    return _band_cell_of_key(_compact(c), _compact(c >> 1), _compact(c >> 2), level, size, z_lo, z_hi)


@njit(cache=True, inline="always")
def _updated(b, delta, lo, hi, thr):
    """A voxel's log-odds after adding ``delta`` (``b`` NaN: unknown, starts at 0; float32, clamped to
    [lo, hi]), and its occupied-state change (+-1 or 0)."""
    was_known = not np.isnan(b)
    v = (b if was_known else np.float32(0.0)) + delta
    if v < lo:
        v = lo
    elif v > hi:
        v = hi
    return v, np.int32(v >= thr) - np.int32(was_known and b >= thr)


@njit(cache=True, inline="always")
def _push_band_row(cols, box, d_occ, d_known, n_out, x, y, occ_change, was_known):
    """Row ``n_out`` of the band changes: cell (x, y), its state changes; ``box`` widened over it. Returns n_out + 1."""
    cols[n_out, 0] = x
    cols[n_out, 1] = y
    box[0] = min(box[0], x)
    box[1] = min(box[1], y)
    box[2] = max(box[2], x)
    box[3] = max(box[3], y)
    d_occ[n_out] = occ_change
    d_known[n_out] = 0 if was_known else 1
    return n_out + 1


@njit(cache=True)
def band_columns(codes, level, size, z_lo, z_hi, cols):
    """Which voxels lie in a height band, by their level-``level`` node's centre, and that node's (x, y).

    Returns a bool mask; ``cols[i]`` gets the signed node indices (x, y) of
    the voxels in the band (the 2D cell of a top-down grid with cells of ``size``).
    """
    n = codes.shape[0]
    mask = np.zeros(n, np.bool_)
    for i in range(n):
        c = codes[i]
        if c < 0:
            continue
        inside, x, y = _band_cell(c, level, size, z_lo, z_hi)
        if inside:
            mask[i] = True
            cols[i, 0] = x
            cols[i, 1] = y
    return mask


@njit(cache=True)
def band_changes(codes, before, deltas, lo, hi, thr, level, size, z_lo, z_hi, cols, d_occ, d_known):
    """The band voxels whose state an `add_log_odds` update changed, compacted.

    ``before`` is the trace of that update (NaN: was unknown) and ``deltas``
    its increments; the value after is recomputed as the update did (float32,
    clamped to [lo, hi]). A voxel counts when it became known or crossed
    ``thr``, and lies in the band (as in `band_columns`).

    Returns:
        (n, box): rows 0..n-1 of ``cols`` (cell x, y), ``d_occ`` (+-1 or 0:
        occupied change) and ``d_known`` (1: became known) are filled; ``box``
        holds their cells' (min x, min y, max x, max y).
    """
    n_out = 0
    box = np.empty(4, np.int64)
    box[0] = box[1] = np.iinfo(np.int64).max
    box[2] = box[3] = np.iinfo(np.int64).min
    for i in range(codes.shape[0]):
        c = codes[i]
        if c < 0:
            continue
        b = before[i]
        was_known = not np.isnan(b)
        _, occ_change = _updated(b, deltas[i], lo, hi, thr)
        if occ_change == 0 and was_known:
            continue
        inside, x, y = _band_cell(c, level, size, z_lo, z_hi)
        if inside:
            n_out = _push_band_row(cols, box, d_occ, d_known, n_out, x, y, occ_change, was_known)
    return n_out, box


@njit(cache=True)
def add_band_counts(occ, known, lo, cols, d_occ, d_known):
    """``occ[y - lo_y, x - lo_x] += d_occ`` (and ``known`` likewise) for each row (x, y) of ``cols``."""
    for i in range(cols.shape[0]):
        y = cols[i, 1] - lo[1]
        x = cols[i, 0] - lo[0]
        occ[y, x] += d_occ[i]
        known[y, x] += d_known[i]


@njit(cache=True)
def apply_marks(
    grid, lo, dims, tkeys, trows, shift, pool, n_bricks, max_bricks, start, miss, hit, clamp_lo, clamp_hi,
    band, thr, level, size, z_lo, z_hi, cols, d_occ, d_known, n_out, box,
):  # fmt: skip
    """Apply a scan grid (`mark_scan`: 1 free, 2 occupied) to the map, brick by brick, and note band changes.

    What `collect_marks` followed by `add_log_odds` (one miss per free cell, one
    hit per occupied cell) and, with ``band``, `band_changes` do, in one pass:
    the grid is read one 4x4x4 brick of the key space at a time, so each brick
    is looked up once. Cells are never revisited, so the order of the updates
    does not change the map. Stops before a brick that needs a new brick of
    storage when ``n_bricks`` has reached ``max_bricks``; the caller grows the
    storage and resumes at the returned brick index.

    ``cols`` / ``d_occ`` / ``d_known`` get band rows from ``n_out`` on and
    ``box`` is widened over their cells, as `band_changes` fills them.

    Returns:
        (next brick index (the number of bricks of the box when done), bricks in
        use, voxels that became known, band rows filled)
    """
    sy = np.int64(dims[2])
    sx = np.int64(dims[1]) * sy
    bx0 = lo[0] >> 2
    by0 = lo[1] >> 2
    bz0 = lo[2] >> 2
    nbx = ((lo[0] + dims[0] - 1) >> 2) - bx0 + 1
    nby = ((lo[1] + dims[1] - 1) >> 2) - by0 + 1
    nbz = ((lo[2] + dims[2] - 1) >> 2) - bz0 + 1
    n_blocks = nbx * nby * nbz
    n_new = 0
    for blk in range(start, n_blocks):
        bz = bz0 + blk % nbz
        rest = blk // nbz
        by = by0 + rest % nby
        bx = bx0 + rest // nby
        brick = _encode(bx, by, bz)
        base = np.int64(-1)
        for dx in range(4):
            x = bx * 4 + dx - lo[0]
            if x < 0 or x >= dims[0]:
                continue
            for dy in range(4):
                y = by * 4 + dy - lo[1]
                if y < 0 or y >= dims[1]:
                    continue
                row = x * sx + y * sy
                for dz in range(4):
                    z = bz * 4 + dz - lo[2]
                    if z < 0 or z >= dims[2]:
                        continue
                    g = grid[row + z]
                    if g == 0:
                        continue
                    if base < 0:
                        s, n_bricks = _claim_slot(tkeys, trows, shift, brick, n_bricks, max_bricks)
                        if s < 0:
                            return blk, n_bricks, n_new, n_out
                        base = np.int64(trows[s]) * BRICK_SIZE
                    local = (
                        (dx & 1)
                        | ((dy & 1) << 1)
                        | ((dz & 1) << 2)
                        | ((dx & 2) << 2)
                        | ((dy & 2) << 3)
                        | ((dz & 2) << 4)
                    )
                    p = base + local
                    b = pool[p]
                    was_known = not np.isnan(b)
                    if not was_known:
                        n_new += 1
                    v, occ_change = _updated(b, miss if g == 1 else hit, clamp_lo, clamp_hi, thr)
                    pool[p] = v
                    if not band or (occ_change == 0 and was_known):
                        continue
                    inside, cx, cy = _band_cell_of_key(lo[0] + x, lo[1] + y, lo[2] + z, level, size, z_lo, z_hi)
                    if inside:
                        n_out = _push_band_row(cols, box, d_occ, d_known, n_out, cx, cy, occ_change, was_known)
    return n_blocks, n_bricks, n_new, n_out


# ray casting --------------------------------------------------------------------
@njit(cache=True, parallel=True)
def cast_rays(
    tkeys, trows, shift, pool, origins, directions, max_ranges_m, res, occ_thr, ignore_unknown, hit, hit_points
):
    """First occupied voxel along each ray (OctoMap's castRay, batched).

    The origin's own voxel counts. A ray stops when the next voxel's centre
    is farther than its max range from the origin, when it leaves the key
    space, or (``ignore_unknown`` False) at an unknown voxel, with no hit.
    """
    n = origins.shape[0]
    inv_res = 1.0 / res
    for i in prange(n):
        hit[i] = False
        hit_points[i, 0] = np.nan
        hit_points[i, 1] = np.nan
        hit_points[i, 2] = np.nan
        ox = origins[i, 0]
        oy = origins[i, 1]
        oz = origins[i, 2]
        kx = _point_key(ox, inv_res)
        ky = _point_key(oy, inv_res)
        kz = _point_key(oz, inv_res)
        if kx < 0 or ky < 0 or kz < 0:
            continue
        dx = directions[i, 0]
        dy = directions[i, 1]
        dz = directions[i, 2]
        norm = math.sqrt(dx * dx + dy * dy + dz * dz)
        dx /= norm
        dy /= norm
        dz /= norm
        max_sq = max_ranges_m[i] * max_ranges_m[i]
        stx, tx, ddx = _axis_setup(ox, dx, kx, res)
        sty, ty, ddy = _axis_setup(oy, dy, ky, res)
        stz, tz, ddz = _axis_setup(oz, dz, kz, res)
        while True:
            v = _value_at(tkeys, trows, shift, pool, _encode(kx, ky, kz))
            if np.isnan(v):
                if not ignore_unknown:
                    break
            elif v >= occ_thr:
                hit[i] = True
                hit_points[i, 0] = (np.float64(kx - KEY_OFFSET) + 0.5) * res
                hit_points[i, 1] = (np.float64(ky - KEY_OFFSET) + 0.5) * res
                hit_points[i, 2] = (np.float64(kz - KEY_OFFSET) + 0.5) * res
                break
            if tx < ty:
                if tx < tz:
                    kx += stx
                    tx += ddx
                else:
                    kz += stz
                    tz += ddz
            elif ty < tz:
                ky += sty
                ty += ddy
            else:
                kz += stz
                tz += ddz
            if kx < 0 or ky < 0 or kz < 0 or kx >= KEY_LIMIT or ky >= KEY_LIMIT or kz >= KEY_LIMIT:
                break
            cx = (np.float64(kx - KEY_OFFSET) + 0.5) * res - ox
            cy = (np.float64(ky - KEY_OFFSET) + 0.5) * res - oy
            cz = (np.float64(kz - KEY_OFFSET) + 0.5) * res - oz
            if cx * cx + cy * cy + cz * cz > max_sq:
                break


# OctoMap binary (.bt) ---------------------------------------------------------------
@njit(cache=True)
def read_bt_nodes(data, max_voxels_hint):
    """Parse OctoMap binary node data (depth-first, 2 bits per child).

    Returns:
        (leaf Morton codes at their own level, leaf levels, leaf occupied flags,
        bytes consumed); a code at level l addresses 8**l voxels.
    """
    cap = max(16, max_voxels_hint)
    codes = np.empty(cap, np.int64)
    levels = np.empty(cap, np.int64)
    occ = np.empty(cap, np.bool_)
    n = 0
    # explicit stack of (node code, node level)
    stack_code = np.empty(16 * 8 + 8, np.int64)
    stack_level = np.empty(16 * 8 + 8, np.int64)
    sp = 0
    stack_code[0] = 0
    stack_level[0] = 16
    sp = 1
    pos = 0
    nbytes = data.shape[0]
    while sp > 0:
        sp -= 1
        code = stack_code[sp]
        level = stack_level[sp]
        if pos + 2 > nbytes:
            return codes[:0], levels[:0], occ[:0], -1
        bits = np.int64(data[pos]) | (np.int64(data[pos + 1]) << 8)
        pos += 2
        # push inner children in reverse so that child 0 is read first
        for ci in range(7, -1, -1):
            b = (bits >> (2 * ci)) & 3
            child = (code << 3) | ci
            if b == 3:
                if level - 1 <= 0:
                    return codes[:0], levels[:0], occ[:0], -1
                stack_code[sp] = child
                stack_level[sp] = level - 1
                sp += 1
        for ci in range(8):
            b = (bits >> (2 * ci)) & 3
            if b == 1 or b == 2:
                if n >= cap:
                    cap *= 2
                    codes2 = np.empty(cap, np.int64)
                    levels2 = np.empty(cap, np.int64)
                    occ2 = np.empty(cap, np.bool_)
                    codes2[:n] = codes[:n]
                    levels2[:n] = levels[:n]
                    occ2[:n] = occ[:n]
                    codes, levels, occ = codes2, levels2, occ2
                codes[n] = (code << 3) | ci
                levels[n] = level - 1
                occ[n] = b == 2
                n += 1
    return codes[:n], levels[:n], occ[:n], pos


@njit(cache=True)
def expand_leaves(codes, levels, values):
    """Pruned leaves (code at its level) to all their finest voxels, Morton-sorted input stays sorted."""
    total = 0
    for i in range(codes.shape[0]):
        total += np.int64(1) << (3 * levels[i])
    out_codes = np.empty(total, np.int64)
    out_values = np.empty(total, np.float32)
    m = 0
    for i in range(codes.shape[0]):
        k = np.int64(1) << (3 * levels[i])
        base = codes[i] << (3 * levels[i])
        for j in range(k):
            out_codes[m] = base + j
            out_values[m] = values[i]
            m += 1
    return out_codes, out_values
