"""Near duplicates that survive shifts, crops and mirrors: wide candidates, then verification on pixels.

A pHash moves many bits when a photo is shifted by two or three pixels, re-cropped or mirrored, so
the hash alone cannot say "same photo". Here the hash only proposes; the pixels decide:

1. **Candidates** (cheap, high recall), the union of
   * pHash pairs within `hash_radius` bits, and pairs between an image's pHash and the pHash of
     another image's mirror (the multi-index search of `hashing.find_close_pairs`);
   * shape-descriptor neighbours: a smooth histogram of gradient orientations over 4×4 soft cells
     (`shape_descriptors`), which a shift of a few pixels, a small crop or a re-encoding barely
     changes, and whose mirror is a fixed permutation. Each image (and its mirror) proposes its
     `descriptor_neighbours` nearest images by the descriptor whitened over the data set (its
     `descriptor_dimensions` strongest components), found inside k-means blocks (each looks in
     its `descriptor_probes` nearest blocks), never over all pairs.
2. **Verification** (vectorised, `fer_core/duplicates/pixel_views.py`): the best Pearson correlation between a
   16×16 grid of one image (Gaussian-blurred, sampled at every other pixel of the central 30 px)
   and the same grid of the other image, over the translations within ±`max_shift` px, every
   scale in `scales` (a crop of up to ±10 % resized back) and the mirror. All transforms are
   linear maps of the pixels, so views come from products of small sampling matrices for many
   images at once, and a pair's correlations are one small matrix product.
   A coarse pass (8×8 grid, more blur, every other translation, three scales) scores every
   candidate; pairs that reach `coarse_min_similarity` get the fine search: every scale and the
   mirror, at the translations within `refine_radius` px of the coarse pass's best (every
   translation when `refine_radius` is None, as the brute-force test uses).

The kind of a pair is the simplest transform that comes within `kind_margin` of its best
similarity: `near` (no transform: re-encoded, brightened), `shifted`, `cropped`, `mirrored`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_core.dataset.pixel_store import iterate_chunks
from fer_core.duplicates.pixel_views import (CENTER, SIDE, SearchGrid, contrast, one_blas_thread, refine_blocks,
                                             score_pairs)

KINDS = ("exact", "near", "shifted", "cropped", "mirrored")
PARALLEL_MIN_PAIRS = 20_000  # fewer candidate pairs are scored in one thread (a thread costs more than it saves)
VERIFY_THREADS = 2  # the audit's threads for the pair verification: numpy's products release the GIL


@dataclass(frozen=True)
class NearVerifyConfig:
    """How near-duplicate candidates are proposed and verified (defaults: docs/METHODS.md, "Near duplicates")."""

    min_similarity: float = 0.95
    wide_min_similarity: float = 0.97
    wide_shift: int = 3
    max_shift: int = 5
    scales: tuple[float, ...] = (0.9, 0.95, 1.0, 1.05, 1.1)
    try_mirror: bool = True
    blur_sigma: float = 1.0
    grid_side: int = 16
    grid_step: float = 2.0
    hash_radius: int = 8
    mirror_hash_radius: int = 6
    descriptor_neighbours: int = 4
    descriptor_dimensions: int = 56
    descriptor_dense_similarity: float = 0.7
    descriptor_dense_neighbours: int = 16
    descriptor_clusters: int = 64
    descriptor_probes: int = 8
    coarse_min_similarity: float = 0.85
    refine_radius: int | None = 2
    kind_margin: float = 0.01
    min_contrast: float = 2.0
    coarse_unit_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("min_similarity", "wide_min_similarity"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} {getattr(self, name)} out of range; expected 0 < value <= 1")
        if not 0 <= self.max_shift <= 8:
            raise ValueError(f"max_shift {self.max_shift} out of range; expected 0..8 pixels")
        if not self.scales or any(not 0.8 <= scale <= 1.25 for scale in self.scales) or 1.0 not in self.scales:
            raise ValueError(f"scales {self.scales} must include 1.0 and lie within 0.8..1.25")
        if not np.allclose((CENTER + (np.arange(self.grid_side) - (self.grid_side - 1) / 2) * self.grid_step) % 1, 0.5):
            raise ValueError(f"grid_side {self.grid_side} × grid_step {self.grid_step} must put the grid points "
                             "halfway between pixels (an even grid_step)")
        if self.refine_radius is not None and self.refine_radius < 1:
            raise ValueError(f"refine_radius {self.refine_radius} out of range; expected None or ≥ 1 pixel")
        half_span = max(self.scales) * self.grid_step * (self.grid_side - 1) / 2 + self.max_shift
        if half_span > CENTER:
            raise ValueError(f"grid_side {self.grid_side} × grid_step {self.grid_step} with scale {max(self.scales)} "
                             f"and shift {self.max_shift} reaches outside the {SIDE}-pixel image")


@dataclass(frozen=True)
class VerifiedPairs:
    """Pairs of rows (a < b) with their best similarity and the transform that gave it (the best over
    the transforms that pass their bar, when only that way is the pair accepted; see `verify_pairs`)."""

    rows_a: np.ndarray
    rows_b: np.ndarray
    similarity: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray
    scale: np.ndarray
    mirrored: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.rows_a)

    def select(self, keep: np.ndarray) -> VerifiedPairs:
        """The pairs where `keep` (a boolean mask or index array) holds."""
        return VerifiedPairs(*(getattr(self, name)[keep] for name in self.__dataclass_fields__))

    @staticmethod
    def concatenate(parts: list[VerifiedPairs]) -> VerifiedPairs:
        if not parts:
            return empty_pairs()
        return VerifiedPairs(*(np.concatenate([getattr(part, name) for part in parts])
                               for name in VerifiedPairs.__dataclass_fields__))


def accepted(pairs: VerifiedPairs, config: NearVerifyConfig) -> np.ndarray:
    """Which scored pairs are near duplicates: similarity ≥ `min_similarity`, and ≥ the stricter
    `wide_min_similarity` when only the mirror, or a translation beyond `wide_shift` px, explains
    them (the wider the search, the more chance look-alikes it finds: faces are nearly symmetric,
    and a large shift can line up the head and the lighting of two different faces; docs/METHODS.md,
    "Near duplicates"). `verify_pairs` reports the narrow transform when the wide one misses its bar."""
    bar = np.where(_wide(pairs.kind, pairs.shift_y, pairs.shift_x, config), config.wide_min_similarity,
                   config.min_similarity)
    return pairs.similarity >= bar


def _wide(kind: np.ndarray, shift_y: np.ndarray, shift_x: np.ndarray, config: NearVerifyConfig) -> np.ndarray:
    return (kind == "mirrored") | (np.maximum(np.abs(shift_y), np.abs(shift_x)) > config.wide_shift)


def empty_pairs() -> VerifiedPairs:
    empty = np.empty(0, np.int64)
    return VerifiedPairs(empty, empty, np.empty(0, np.float32), np.empty(0, np.int8), np.empty(0, np.int8),
                         np.empty(0, np.float32), np.empty(0, bool), np.empty(0, dtype=object))


def fine_grid(config: NearVerifyConfig) -> SearchGrid:
    """Every translation within ±max_shift, every scale, with and without the mirror."""
    mirrors = (False, True) if config.try_mirror else (False,)
    return SearchGrid(config.blur_sigma, config.grid_side, config.grid_step,
                      tuple(range(-config.max_shift, config.max_shift + 1)),
                      tuple((scale, mirrored) for mirrored in mirrors for scale in config.scales))


def coarse_grid(config: NearVerifyConfig) -> SearchGrid:
    """A cheap first pass: more blur, a sparser grid, every other translation, the extreme scales."""
    mirrors = (False, True) if config.try_mirror else (False,)
    scales = sorted({min(config.scales), 1.0, max(config.scales)})
    return SearchGrid(2 * config.blur_sigma, config.grid_side // 2, 2 * config.grid_step,
                      tuple(range(-config.max_shift + 1, config.max_shift, 2)) or (0,),
                      tuple((scale, mirrored) for mirrored in mirrors for scale in scales))


@one_blas_thread
def verify_pairs(pixels: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray,
                 config: NearVerifyConfig = NearVerifyConfig(), threads: int = 1) -> VerifiedPairs:
    """`score_pairs_on_pixels` in `threads` threads, each taking the pairs of some images b (numpy's
    products release the GIL): the same scores, in the order of the pairs given."""
    rows_a, rows_b = np.asarray(rows_a, np.int64), np.asarray(rows_b, np.int64)
    if threads <= 1 or len(rows_a) < PARALLEL_MIN_PAIRS:
        return score_pairs_on_pixels(pixels, rows_a, rows_b, config)
    from concurrent.futures import ThreadPoolExecutor

    parts = [np.flatnonzero(rows_b % threads == part) for part in range(threads)]  # a unit's pairs share b
    with ThreadPoolExecutor(threads, thread_name_prefix="fer-verify") as pool:
        scored = list(pool.map(lambda part: score_pairs_on_pixels(pixels, rows_a[part], rows_b[part], config), parts))
    merged = {}
    for name in VerifiedPairs.__dataclass_fields__:
        values = [getattr(result, name) for result in scored]
        merged[name] = np.empty(len(rows_a), values[0].dtype)
        for part, value in zip(parts, values):
            merged[name][part] = value
    return VerifiedPairs(**merged)


def score_pairs_on_pixels(pixels: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray,
                          config: NearVerifyConfig) -> VerifiedPairs:
    """Score every pair: the best correlation over translations, scales and the mirror, and its kind.

    A coarse pass (`coarse_grid`) scores every pair cheaply; pairs below `coarse_min_similarity`
    keep that coarse score (they are far below any acceptance threshold), the rest get the fine
    search (`fine_grid`) over every scale and mirror and the translations within `refine_radius`
    px of the coarse pass's best (every translation when `refine_radius` is None). Returns all
    pairs, accepted or not (see `accepted`). Pairs where either image is nearly flat (standard
    deviation below `min_contrast` grey levels) score 0: a correlation there measures noise.
    """
    rows_a, rows_b = np.asarray(rows_a, np.int64), np.asarray(rows_b, np.int64)
    rows = np.union1d(rows_a, rows_b)
    flat_rows = rows[np.concatenate([contrast(images) for _, images in iterate_chunks(pixels, 8192, rows)]
                                    or [np.empty(0, np.float32)]) < config.min_contrast]
    coarse = coarse_grid(config)
    coarse_best, coarse_index = score_pairs(pixels, rows_a, rows_b, coarse, config.coarse_unit_size)
    coarse_best[np.isin(rows_a, flat_rows) | np.isin(rows_b, flat_rows)] = 0.0
    promising = np.flatnonzero(coarse_best >= config.coarse_min_similarity)
    result = VerifiedPairs(rows_a, rows_b, coarse_best.astype(np.float32), np.zeros(len(rows_a), np.int8),
                           np.zeros(len(rows_a), np.int8), np.ones(len(rows_a), np.float32),
                           np.zeros(len(rows_a), bool), np.full(len(rows_a), "", dtype=object))
    if not len(promising):  # nothing worth the fine search (always so on a tiny dataset)
        return result
    if config.refine_radius is None:  # the window around no translation covers them all
        radius, center_y, center_x = config.max_shift, np.zeros(len(promising), int), np.zeros(len(promising), int)
    else:
        radius, coarse_shifts = config.refine_radius, np.array(coarse.shifts)
        shift_index = coarse_index[promising] // len(coarse.transforms)  # y-major, like the windows
        center_y, center_x = (coarse_shifts[index] for index in np.divmod(shift_index, len(coarse_shifts)))
    grid = fine_grid(config)
    for block, scores, shift_y, shift_x in refine_blocks(pixels, rows_a[promising], rows_b[promising], grid, center_y,
                                                         center_x, radius):
        fine = _fine_result(scores, shift_y, shift_x, grid, config)
        for name in ("similarity", "shift_x", "shift_y", "scale", "mirrored", "kind"):
            getattr(result, name)[promising[block]] = fine[name]
    return result


def _fine_result(scores: np.ndarray, shift_y: np.ndarray, shift_x: np.ndarray, grid: SearchGrid,
                 config: NearVerifyConfig) -> dict[str, np.ndarray]:
    """The fine search's verdict on a block of pairs: the best transform of each, or, where only a wide
    transform explains the pair and it misses the wide bar yet a narrow one passes the narrow bar, the
    narrow one (elsewhere the best over all transforms)."""
    fine = _best_transforms(scores, shift_y, shift_x, grid, config.kind_margin)
    redo = (_wide(fine["kind"], fine["shift_y"], fine["shift_x"], config)
            & (fine["similarity"] < config.wide_min_similarity))
    if redo.any():
        narrow = ((np.maximum(np.abs(shift_y[redo]), np.abs(shift_x[redo])) <= config.wide_shift)[:, :, None]
                  & ~np.array([mirrored for _, mirrored in grid.transforms])[None, None, :])
        again = _best_transforms(np.where(narrow, scores[redo], -np.inf), shift_y[redo], shift_x[redo], grid,
                                 config.kind_margin)
        rescued = np.flatnonzero(redo)[again["similarity"] >= config.min_similarity]
        for name in fine:
            fine[name][rescued] = again[name][again["similarity"] >= config.min_similarity]
    return fine


def _best_transforms(scores: np.ndarray, shift_y: np.ndarray, shift_x: np.ndarray, grid: SearchGrid,
                     kind_margin: float) -> dict[str, np.ndarray]:
    """The best score per pair, and the simplest transform within `kind_margin` of it.

    Kinds from the simplest: near (no transform) ⊂ shifted ⊂ cropped (any scale) ⊂ mirrored.
    """
    count = len(scores)
    pairs = np.arange(count)
    identity = grid.transforms.index((1.0, False))
    plain = np.array([not mirrored for _, mirrored in grid.transforms])
    no_shift = (shift_y == 0) & (shift_x == 0)
    # each kind's best score and the (shift, transform) index that gives it
    unmoved = np.where(no_shift, scores[:, :, identity], -np.inf)
    near_shift = unmoved.argmax(axis=1)
    shifted_shift = scores[:, :, identity].argmax(axis=1)
    unmirrored = np.where(plain, scores, -np.inf).reshape(count, -1).argmax(axis=1)
    overall = scores.reshape(count, -1).argmax(axis=1)
    candidates = [("near", near_shift, np.full(count, identity)),
                  ("shifted", shifted_shift, np.full(count, identity)),
                  ("cropped", *np.divmod(unmirrored, len(grid.transforms))),
                  ("mirrored", *np.divmod(overall, len(grid.transforms)))]
    best = scores[pairs, candidates[-1][1], candidates[-1][2]]
    kind = np.full(count, "mirrored", dtype=object)
    shift_index, transform_index = candidates[-1][1].copy(), candidates[-1][2].copy()
    settled = np.zeros(count, bool)
    for name, shift, transform in candidates[:-1]:
        value = unmoved[pairs, shift] if name == "near" else scores[pairs, shift, transform]
        good = ~settled & (value >= best - kind_margin)
        kind[good], shift_index[good], transform_index[good] = name, shift[good], transform[good]
        settled |= good
    scale_of = np.array([scale for scale, _ in grid.transforms], np.float32)
    mirrored_of = np.array([mirrored for _, mirrored in grid.transforms])
    return {"similarity": best.astype(np.float32), "shift_y": shift_y[pairs, shift_index].astype(np.int8),
            "shift_x": shift_x[pairs, shift_index].astype(np.int8), "scale": scale_of[transform_index],
            "mirrored": mirrored_of[transform_index], "kind": kind}


def brute_force_similarity(image_a: np.ndarray, image_b: np.ndarray,
                           config: NearVerifyConfig = NearVerifyConfig()) -> float:
    """The full search by the book, one transform at a time with scipy.ndimage (for tests).

    Blur both images, resample image A's grid under each (scale, mirror) and image B's grid under
    each translation with `map_coordinates`, and take the best Pearson correlation.
    """
    from scipy import ndimage

    if min(contrast(image_a[None])[0], contrast(image_b[None])[0]) < config.min_contrast:
        return 0.0
    grid = fine_grid(config)
    blurred_a = ndimage.gaussian_filter(image_a.astype(np.float64), grid.blur_sigma, mode="nearest")
    blurred_b = ndimage.gaussian_filter(image_b.astype(np.float64), grid.blur_sigma, mode="nearest")
    offsets = grid.offsets()
    best = -1.0
    for scale, mirrored in grid.transforms:
        ys, xs = np.meshgrid(CENTER + scale * offsets, CENTER + (-1 if mirrored else 1) * scale * offsets, indexing="ij")
        template = ndimage.map_coordinates(blurred_a, [ys, xs], order=1, mode="nearest").ravel()
        for shift_y in grid.shifts:
            for shift_x in grid.shifts:
                ys, xs = np.meshgrid(CENTER + offsets + shift_y, CENTER + offsets + shift_x, indexing="ij")
                window = ndimage.map_coordinates(blurred_b, [ys, xs], order=1, mode="nearest").ravel()
                best = max(best, float(np.corrcoef(template, window)[0, 1]))
    return best
