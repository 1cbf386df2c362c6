"""Views of 48×48 images under small transforms, and their correlations, for `fer_core.duplicates.verification`.

Every transform (blur, translation, scale, mirror) is a linear map of the pixels, so a view is a
product of small sampling matrices with the image, built for many images at once; a pair's
correlations over many transforms are then one small matrix product.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from fer_core.dataset.pixel_store import iterate_chunks, release_pages

SIDE = 48
# Batches of random reads between two `release_pages` of a memory-mapped store: a read maps its page's
# neighbours too (the kernel's fault-around), so scattered reads soon map the whole store into the process.
RELEASE_EVERY = 2
CENTER = (SIDE - 1) / 2


def one_blas_thread(function):
    """Run `function` with BLAS on one thread: its matrix products are small, and OpenBLAS's second
    thread spins more than it computes (3–10× the CPU time on the shared 2-core machine)."""
    @functools.wraps(function)
    def single_threaded(*args, **kwargs):
        from threadpoolctl import threadpool_limits  # (scikit-learn's dependency; imported when used)

        with threadpool_limits(1, user_api="blas"):
            return function(*args, **kwargs)
    return single_threaded


def _blur_matrix(sigma: float) -> np.ndarray:
    """SIDE×SIDE Gaussian blur with edge pixels repeated (scipy.ndimage mode='nearest', truncate 4σ)."""
    if sigma <= 0:
        return np.eye(SIDE)
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    blur = np.zeros((SIDE, SIDE))
    for offset, weight in zip(offsets, kernel):
        np.add.at(blur, (np.arange(SIDE), np.clip(np.arange(SIDE) + offset, 0, SIDE - 1)), weight)
    return blur


def _sampling_matrix(positions: np.ndarray, sigma: float) -> np.ndarray:
    """Rows that sample the blurred 1-D signal at fractional `positions` (linear interpolation, edges repeated)."""
    positions = np.clip(positions, 0, SIDE - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, SIDE - 1)
    fraction = positions - low
    interpolate = np.zeros((len(positions), SIDE))
    np.add.at(interpolate, (np.arange(len(positions)), low), 1 - fraction)
    np.add.at(interpolate, (np.arange(len(positions)), high), fraction)
    return interpolate @ _blur_matrix(sigma)


@dataclass(frozen=True)
class SearchGrid:
    """One verification pass: how images are blurred and sampled, and which transforms are tried."""

    blur_sigma: float
    grid_side: int
    grid_step: float
    shifts: tuple[int, ...]
    transforms: tuple[tuple[float, bool], ...]  # (scale, mirrored) of the first image's views

    def offsets(self) -> np.ndarray:
        """Grid point offsets from the image centre, in pixels."""
        return (np.arange(self.grid_side) - (self.grid_side - 1) / 2) * self.grid_step


@functools.lru_cache(maxsize=16)
def _samplers(grid: SearchGrid) -> tuple[dict[float, np.ndarray], np.ndarray, np.ndarray]:
    """The grid's sampling matrices, built once: per scale (rows and columns of template views);
    all translations stacked (windows); and 47×48 blur-then-mean-of-two-neighbours (bilinear
    sampling halfway between pixels, which is where the fine grid's points fall)."""
    offsets = grid.offsets()
    by_scale = {scale: _sampling_matrix(CENTER + scale * offsets, grid.blur_sigma).astype(np.float32)
                for scale, _ in grid.transforms}
    shifted = np.concatenate([_sampling_matrix(CENTER + offsets + shift, grid.blur_sigma)
                              for shift in grid.shifts]).astype(np.float32)
    box = np.zeros((SIDE - 1, SIDE))
    box[np.arange(SIDE - 1), np.arange(SIDE - 1)] = box[np.arange(SIDE - 1), np.arange(1, SIDE)] = 0.5
    return by_scale, shifted, (box @ _blur_matrix(grid.blur_sigma)).astype(np.float32)


def _sandwich(left: np.ndarray, images: np.ndarray, right: np.ndarray) -> np.ndarray:
    """`left @ image @ right.T` for every image (n × rows of left × rows of right), as two large
    matrix products: a stack of tiny products spends its time in per-image overhead."""
    half = (images.reshape(-1, SIDE) @ right.T).reshape(len(images), SIDE, len(right)).transpose(0, 2, 1)
    return (np.ascontiguousarray(half).reshape(-1, SIDE) @ left.T).reshape(len(images), len(right), len(left)
                                                                          ).transpose(0, 2, 1)


def template_views(images: np.ndarray, grid: SearchGrid) -> np.ndarray:
    """n × transforms × grid² normalised views of each image under every (scale, mirror).

    Rows and columns are sampled at the same positions, and a mirrored view is the plain view
    with its columns reversed (the grid is symmetric about the centre), so each scale is one
    sandwich of sampling matrices.
    """
    plain = {scale: _sandwich(sampling, images, sampling) for scale, sampling in _samplers(grid)[0].items()}
    views = np.stack([plain[scale][:, :, ::-1] if mirrored else plain[scale] for scale, mirrored in grid.transforms],
                     axis=1).reshape(len(images), len(grid.transforms), grid.grid_side ** 2)
    views -= views.mean(axis=-1, keepdims=True)
    views /= np.sqrt(np.einsum("...k,...k->...", views, views))[..., None] + 1e-6
    return views


def centred_norms(views: np.ndarray) -> np.ndarray:
    """The norm of each view (last axis) centred on its own mean, plus a little against division by zero."""
    sums = views.sum(axis=-1)
    squares = np.einsum("...k,...k->...", views, views)
    return np.sqrt(np.maximum(squares - sums * sums / views.shape[-1], 0.0)) + 1e-6


def shifted_windows(images: np.ndarray, grid: SearchGrid) -> tuple[np.ndarray, np.ndarray]:
    """n × shifts² × grid² views of each image under every translation (y-major), and their norms.

    The views are centred on the image's mean, not each its own: against a zero-mean template the
    product is the same, and skipping a normalising pass over the largest array saves its time.
    """
    side, count = grid.grid_side, len(grid.shifts)
    stacked = _samplers(grid)[1]
    views = _sandwich(stacked, images - images.mean(axis=(1, 2), keepdims=True), stacked)
    views = views.reshape(len(images), count, side, count, side).transpose(0, 1, 3, 2, 4)
    views = views.reshape(len(images), count * count, side * side)
    return views, centred_norms(views)


def contrast(images: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Standard deviation of each image's grey levels (in chunks: one large temporary costs more in
    page faults than the arithmetic)."""
    return np.concatenate([np.asarray(images[first:first + chunk]).reshape(-1, SIDE * SIDE)
                           .std(axis=1, dtype=np.float32)
                           for first in range(0, len(images), chunk)] or [np.empty(0, np.float32)])


def _units(rows_a: np.ndarray, rows_b: np.ndarray, unit_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs grouped by their second image into units of at most `unit_size` pairs.

    Returns (order, unit starts, unit sizes): a unit is `order[start:start + size]`, pairs that
    share one image b, so b's shifted windows are built once and multiplied by all its partners'
    templates in one product, instead of being copied once per pair.
    """
    order = np.lexsort((rows_a, rows_b))
    sorted_b = rows_b[order]
    first = np.flatnonzero(np.r_[True, sorted_b[1:] != sorted_b[:-1]])
    position = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    starts = np.flatnonzero(position % unit_size == 0)
    return order, starts, np.diff(np.r_[starts, len(order)])


def score_pairs(pixels: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray, grid: SearchGrid,
                unit_size: int, chunk_floats: int = 2**20,
                shared_floats: int = 2**24) -> tuple[np.ndarray, np.ndarray]:
    """The best correlation of image a's template views against image b's windows, per pair, and
    where it is (an index into shifts² × transforms, y-major shifts, transforms fastest).

    Pairs sharing image b form units; units of equal size are stacked, so each unit is one
    (shifts² × grid²) · (grid² × size·transforms) product in a batched matrix product. Work goes
    in chunks of about `chunk_floats` floats (4 MB, measured best): fresh large arrays cost more
    in page faults than the arithmetic, and small ones stay in cache. Template views are built
    once per image when they fit in `shared_floats` (the coarse pass, where each image has many
    partners), else once per chunk.
    """
    shift_count, transform_count = len(grid.shifts) ** 2, len(grid.transforms)
    best, where = np.empty(len(rows_a), np.float32), np.empty(len(rows_a), np.int64)
    if not len(rows_a):  # no pair to score (a tiny dataset): no views to build
        return best, where
    window_floats, template_floats = shift_count * grid.grid_side ** 2, transform_count * grid.grid_side ** 2

    def templates_of(rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), transform_count, grid.grid_side ** 2), np.float32)
        step = max(1, chunk_floats // (SIDE * SIDE * 4))
        for first, images in iterate_chunks(pixels, step, rows):  # (rows ascending: np.unique's)
            out[first:first + step] = template_views(np.asarray(images, np.float32), grid)
        return out

    template_rows = np.unique(rows_a)
    shared = templates_of(template_rows) if template_floats * len(template_rows) <= shared_floats else None
    order, starts, sizes = _units(rows_a, rows_b, unit_size)
    for size in np.unique(sizes):
        unit_starts = starts[sizes == size]
        batch = max(1, chunk_floats // (window_floats + size * (template_floats + shift_count * transform_count)))
        for first in range(0, len(unit_starts), batch):
            if first // batch % RELEASE_EVERY == RELEASE_EVERY - 1:
                release_pages(pixels)
            pairs = order[unit_starts[first:first + batch, None] + np.arange(size)]  # units × size
            partners = rows_a[pairs]
            windows, norms = shifted_windows(np.asarray(pixels[rows_b[pairs[:, 0]]], np.float32), grid)
            if shared is None:
                unique, inverse = np.unique(partners, return_inverse=True)
                templates = templates_of(unique)[inverse.reshape(partners.shape)]
            else:
                templates = shared[np.searchsorted(template_rows, partners)]
            products = np.matmul(windows, templates.reshape(len(pairs), size * transform_count, -1).transpose(0, 2, 1))
            products /= norms[:, :, None]
            products = products.reshape(len(pairs), shift_count, size, transform_count).transpose(0, 2, 1, 3)
            products = products.reshape(len(pairs) * size, shift_count * transform_count)
            where[pairs.ravel()] = index = products.argmax(axis=1)
            best[pairs.ravel()] = products[np.arange(len(products)), index]
    return best, where


def refine_blocks(pixels: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray, grid: SearchGrid,
                  center_y: np.ndarray, center_x: np.ndarray, radius: int, chunk_floats: int = 2**20,
                  block_pairs: int = 2**15):
    """The fine search around each pair's coarse best translation: every transform, and every
    translation within `radius` px of (center_y, center_x) (clipped to stay inside the grid's shifts).

    Yields, a block of about `block_pairs` pairs at a time (scores take 1.4 KB a pair, so they never
    exist for all pairs at once): the pairs' indices, their scores (pairs × (2·radius + 1)² ×
    transforms) and each score's translation (pairs × (2·radius + 1)², y and x).

    The fine grid's points fall halfway between pixels, so image b is blurred and averaged over 2×2
    neighbours once; each pair cuts the block its translations cover out of that, and every window is a
    strided view of the block.
    """
    limit = max(grid.shifts)
    radius = min(radius, limit)
    steps = np.arange(-radius, radius + 1)
    center_y = np.clip(center_y, -limit + radius, limit - radius)
    center_x = np.clip(center_x, -limit + radius, limit - radius)
    local, side, transform_count = len(steps), grid.grid_side, len(grid.transforms)
    span = 2 * radius + 1 + int(grid.grid_step) * (side - 1)  # block rows (and columns) the windows cover
    first_point = int(CENTER + grid.offsets()[0] - 0.5) - radius  # the block's corner at translation 0
    smooth = _samplers(grid)[2]
    order = np.argsort(rows_a, kind="stable")  # pairs that share image a share its template views
    batch = max(1, chunk_floats // (2 * local * local * side * side + transform_count * side * side))
    per_block = max(1, block_pairs // batch) * batch
    for block_first in range(0, len(order), per_block):
        block = order[block_first:block_first + per_block]
        scores = np.empty((len(block), local * local, transform_count), np.float32)
        for first in range(0, len(block), batch):
            if first // batch % RELEASE_EVERY == RELEASE_EVERY - 1:
                release_pages(pixels)
            part = block[first:first + batch]
            hubs, hub_of = np.unique(rows_b[part], return_inverse=True)
            images = np.asarray(pixels[hubs], np.float32)
            boxed = _sandwich(smooth, images - images.mean(axis=(1, 2), keepdims=True), smooth)  # hubs × 47 × 47
            block_y = first_point + center_y[part, None] + np.arange(span)
            block_x = first_point + center_x[part, None] + np.arange(span)
            blocks = np.ascontiguousarray(boxed[hub_of[:, None, None], block_y[:, :, None], block_x[:, None, :]])
            step = int(grid.grid_step)
            pair_stride, row_stride, column_stride = blocks.strides
            windows = np.lib.stride_tricks.as_strided(
                blocks, (len(part), local, local, side, side),
                (pair_stride, row_stride, column_stride, step * row_stride, step * column_stride), writeable=False)
            windows = windows.reshape(len(part), local * local, side * side)  # (a copy: the views overlap)
            unique, inverse = np.unique(rows_a[part], return_inverse=True)
            templates = template_views(np.asarray(pixels[unique], np.float32), grid)[inverse]
            scores[first:first + len(part)] = (np.matmul(windows, templates.transpose(0, 2, 1))
                                               / centred_norms(windows)[:, :, None])
        release_pages(pixels)  # the store's pages read for this block (a million images: 2.3 GB when all are)
        yield (block, scores, np.repeat(center_y[block, None] + steps, local, axis=1),
               np.tile(center_x[block, None] + steps, local))
