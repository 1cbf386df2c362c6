"""Near duplicates that survive shifts, crops and mirrors: wide candidates, then verification on pixels.

A pHash moves many bits when a photo is shifted by two or three pixels, re-cropped or mirrored, so
the hash alone cannot say "same photo". Here the hash only proposes; the pixels decide:

1. **Candidates** (cheap, high recall), the union of
   * pHash pairs within `hash_radius` bits, and pairs between an image's pHash and the pHash of
     another image's mirror (the multi-index search of `hashing.find_close_pairs`);
   * shape-descriptor neighbours: a smooth histogram of gradient orientations over 4×4 soft cells
     (`shape_descriptors`), which a shift of a few pixels, a small crop or a re-encoding barely
     changes, and whose mirror is a fixed permutation. Each image (and its mirror) proposes its
     `descriptor_neighbours` nearest images, found inside k-means blocks (each looks in its
     `descriptor_probes` nearest blocks), never over all pairs.
2. **Verification** (exact, vectorised): the best Pearson correlation between a 16×16 grid of
   one image (Gaussian-blurred, sampled at every other pixel of the central 30 px) and the same
   grid of the other image, over every translation within ±`max_shift` px, every scale in
   `scales` (a crop of up to ±10 % resized back) and the mirror. All transforms are linear maps
   of the pixels, so each is a small sampling matrix and every image's views come from two
   matrix products for the whole batch; each pair is then one (49 × 256) · (256 × 10) product.
   A coarse pass (8×8 grid, more blur, every other shift) runs first; only pairs that reach
   `coarse_min_similarity` there get the full search.

The kind of a pair is the simplest transform that comes within `kind_margin` of its best
similarity: `near` (no transform: re-encoded, brightened), `shifted`, `cropped`, `mirrored`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


SIDE = 48
CENTER = (SIDE - 1) / 2
KINDS = ("exact", "near", "shifted", "cropped", "mirrored")


@dataclass(frozen=True)
class NearVerifyConfig:
    """How near-duplicate candidates are proposed and verified (defaults: README, "Near duplicates")."""

    min_similarity: float = 0.95
    mirrored_min_similarity: float = 0.97
    max_shift: int = 3
    scales: tuple[float, ...] = (0.9, 0.95, 1.0, 1.05, 1.1)
    try_mirror: bool = True
    blur_sigma: float = 1.0
    grid_side: int = 16
    grid_step: float = 2.0
    hash_radius: int = 8
    descriptor_neighbours: int = 6
    descriptor_clusters: int = 64
    descriptor_probes: int = 4
    coarse_min_similarity: float = 0.85
    kind_margin: float = 0.01
    min_contrast: float = 2.0
    pair_batch: int = 512
    coarse_pair_batch: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("min_similarity", "mirrored_min_similarity"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} {getattr(self, name)} out of range; expected 0 < value <= 1")
        if not 0 <= self.max_shift <= 8:
            raise ValueError(f"max_shift {self.max_shift} out of range; expected 0..8 pixels")
        if not self.scales or any(not 0.8 <= scale <= 1.25 for scale in self.scales) or 1.0 not in self.scales:
            raise ValueError(f"scales {self.scales} must include 1.0 and lie within 0.8..1.25")
        half_span = max(self.scales) * self.grid_step * (self.grid_side - 1) / 2 + self.max_shift
        if half_span > CENTER:
            raise ValueError(f"grid_side {self.grid_side} × grid_step {self.grid_step} with scale {max(self.scales)} "
                             f"and shift {self.max_shift} reaches outside the {SIDE}-pixel image")


@dataclass(frozen=True)
class VerifiedPairs:
    """Pairs of rows (a < b) with their best similarity and the transform that gave it."""

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
    """Which scored pairs are near duplicates: similarity ≥ `min_similarity`, and ≥ `mirrored_min_similarity`
    when only the mirror explains them (faces are nearly symmetric, so the mirror search finds more
    chance look-alikes; README, "Near duplicates")."""
    bar = np.where(pairs.kind == "mirrored", config.mirrored_min_similarity, config.min_similarity)
    return pairs.similarity >= bar


def empty_pairs() -> VerifiedPairs:
    empty = np.empty(0, np.int64)
    return VerifiedPairs(empty, empty, np.empty(0, np.float32), np.empty(0, np.int8), np.empty(0, np.int8),
                         np.empty(0, np.float32), np.empty(0, bool), np.empty(0, dtype=object))


# --------------------------------------------------------------------------------------- verification

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


def _template_views(images: np.ndarray, grid: SearchGrid) -> np.ndarray:
    """n × transforms × grid² normalised views of each image under every (scale, mirror)."""
    offsets = grid.offsets()
    columns = np.concatenate([_sampling_matrix(CENTER + (-1 if mirrored else 1) * scale * offsets, grid.blur_sigma)
                              for scale, mirrored in grid.transforms]).astype(np.float32)
    rows = {scale: _sampling_matrix(CENTER + scale * offsets, grid.blur_sigma).astype(np.float32)
            for scale, _ in grid.transforms}
    sampled_columns = images @ columns.T  # n × 48 × (transforms·grid)
    side = grid.grid_side
    views = np.stack([rows[scale] @ sampled_columns[:, :, index * side:(index + 1) * side]
                      for index, (scale, _) in enumerate(grid.transforms)], axis=1)
    return _normalise(views.reshape(len(images), len(grid.transforms), side * side))


def _shifted_windows(images: np.ndarray, grid: SearchGrid) -> np.ndarray:
    """n × shifts² × grid² normalised views of each image under every translation (y-major)."""
    offsets = grid.offsets()
    side, count = grid.grid_side, len(grid.shifts)
    positions = CENTER + offsets
    halfway = np.allclose(positions % 1, 0.5) and all(float(shift).is_integer() for shift in grid.shifts)
    if halfway and count * side > 2 * SIDE:  # (for a few small windows the sampling matrices are cheaper)
        # Linear interpolation halfway between two pixels is their mean: blur, take 2×2 means once
        # (two matrix products per image), and every shifted window is a strided slice of that.
        box = np.zeros((SIDE - 1, SIDE))
        box[np.arange(SIDE - 1), np.arange(SIDE - 1)] = box[np.arange(SIDE - 1), np.arange(1, SIDE)] = 0.5
        smooth = (box @ _blur_matrix(grid.blur_sigma)).astype(np.float32)
        boxed = (smooth @ images @ smooth.T).reshape(len(images), -1)  # n × 47·47
        starts = (positions - 0.5).astype(int)[None, :] + np.array(grid.shifts, dtype=int)[:, None]  # shifts × grid
        index = starts[:, None, :, None] * (SIDE - 1) + starts[None, :, None, :]  # shift y, shift x, grid y, grid x
        return _normalise(boxed[:, index.reshape(-1)].reshape(len(images), count * count, side * side))
    stacked = np.concatenate([_sampling_matrix(CENTER + offsets + shift, grid.blur_sigma)
                              for shift in grid.shifts]).astype(np.float32)
    views = stacked @ (images @ stacked.T)  # n × (shifts·grid) × (shifts·grid)
    views = views.reshape(len(images), count, side, count, side).transpose(0, 1, 3, 2, 4)
    return _normalise(views.reshape(len(images), count * count, side * side))


def _normalise(views: np.ndarray) -> np.ndarray:
    """Zero mean, unit norm along the last axis, in place (the views are fresh arrays): no temporaries."""
    views -= views.mean(axis=-1, keepdims=True)
    views /= np.sqrt(np.einsum("...k,...k->...", views, views))[..., None] + 1e-6
    return views


def _contrast(images: np.ndarray) -> np.ndarray:
    return np.asarray(images).reshape(len(images), -1).std(axis=1, dtype=np.float32)


def _score_pairs(pixels: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray, grid: SearchGrid,
                 pair_batch: int) -> np.ndarray:
    """pairs × shifts² × transforms correlations.

    Views are built once per image (per batch of pairs when they are large, as in the fine pass),
    then each pair is one small matrix product of its two images' views.
    """
    scores = np.empty((len(rows_a), len(grid.shifts) ** 2, len(grid.transforms)), np.float32)
    if not len(rows_a):  # no pair to score (a tiny dataset, or none promising): no views to build
        return scores
    view_floats = (len(grid.shifts) ** 2 + len(grid.transforms)) * grid.grid_side ** 2
    whole = view_floats * len(np.union1d(rows_a, rows_b)) <= 64 * 2**20  # all views fit in 256 MB: build once
    if whole:
        rows = np.union1d(rows_a, rows_b)
        images = np.asarray(pixels[rows], dtype=np.float32)
        templates, windows = _template_views(images, grid), _shifted_windows(images, grid)
    for start in range(0, len(rows_a), pair_batch):
        batch_a, batch_b = rows_a[start:start + pair_batch], rows_b[start:start + pair_batch]
        if whole:
            batch_templates = templates[np.searchsorted(rows, batch_a)]
            batch_windows = windows[np.searchsorted(rows, batch_b)]
        else:
            unique_a, index_a = np.unique(batch_a, return_inverse=True)
            unique_b, index_b = np.unique(batch_b, return_inverse=True)
            batch_templates = _template_views(np.asarray(pixels[unique_a], dtype=np.float32), grid)[index_a]
            batch_windows = _shifted_windows(np.asarray(pixels[unique_b], dtype=np.float32), grid)[index_b]
        scores[start:start + len(batch_a)] = np.matmul(batch_windows, batch_templates.transpose(0, 2, 1))
    return scores


def verify_pairs(pixels: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray,
                 config: NearVerifyConfig = NearVerifyConfig()) -> VerifiedPairs:
    """Score every pair: the best correlation over translations, scales and the mirror, and its kind.

    A coarse pass (`coarse_grid`) scores every pair cheaply; pairs below `coarse_min_similarity`
    keep that coarse score (they are far below any acceptance threshold), the rest get the full
    search (`fine_grid`). Returns all pairs, accepted or not (accept with `similarity >=
    config.min_similarity`). Pairs where either image is nearly flat (standard deviation below
    `min_contrast` grey levels) score 0: a correlation there measures noise, not content.
    """
    rows_a, rows_b = np.asarray(rows_a, np.int64), np.asarray(rows_b, np.int64)
    rows = np.union1d(rows_a, rows_b)
    flat_rows = rows[_contrast(pixels[rows]) < config.min_contrast] if len(rows) else rows
    coarse = _score_pairs(pixels, rows_a, rows_b, coarse_grid(config), config.coarse_pair_batch)
    coarse_best = coarse.reshape(len(coarse), -1).max(axis=1) if len(coarse) else np.empty(0, np.float32)
    flat = np.isin(rows_a, flat_rows) | np.isin(rows_b, flat_rows)
    coarse_best[flat] = 0.0
    promising = np.flatnonzero(coarse_best >= config.coarse_min_similarity)
    result = VerifiedPairs(rows_a, rows_b, coarse_best.astype(np.float32), np.zeros(len(rows_a), np.int8),
                           np.zeros(len(rows_a), np.int8), np.ones(len(rows_a), np.float32),
                           np.zeros(len(rows_a), bool), np.full(len(rows_a), "", dtype=object))
    if not len(promising):  # nothing worth the full search (always so on a tiny dataset)
        return result
    grid = fine_grid(config)
    fine = _best_transforms(rows_a[promising], rows_b[promising],
                            _score_pairs(pixels, rows_a[promising], rows_b[promising], grid, config.pair_batch),
                            grid, config.kind_margin)
    for name in ("similarity", "shift_x", "shift_y", "scale", "mirrored", "kind"):
        getattr(result, name)[promising] = getattr(fine, name)
    return result


def _best_transforms(rows_a: np.ndarray, rows_b: np.ndarray, scores: np.ndarray, grid: SearchGrid,
                     kind_margin: float) -> VerifiedPairs:
    """The best score per pair, and the simplest transform within `kind_margin` of it."""
    shifts = np.array(grid.shifts)
    scale_of = np.array([scale for scale, _ in grid.transforms], np.float32)
    mirrored_of = np.array([mirrored for _, mirrored in grid.transforms])
    identity = np.array([transform == (1.0, False) for transform in grid.transforms])
    no_shift = np.zeros(len(shifts) ** 2, bool)
    no_shift[(len(shifts) ** 2) // 2] = True
    any_shift = np.ones(len(shifts) ** 2, bool)
    # Masks over (shift, transform) for each kind, from the simplest: near ⊂ shifted ⊂ cropped ⊂ mirrored.
    allowed = {
        "near": no_shift[:, None] & identity[None, :],
        "shifted": any_shift[:, None] & identity[None, :],
        "cropped": any_shift[:, None] & ~mirrored_of[None, :],
        "mirrored": any_shift[:, None] & np.ones(len(grid.transforms), bool)[None, :],
    }
    flat_scores = scores.reshape(len(scores), -1)
    best = flat_scores.max(axis=1, initial=-1.0)
    chosen_kind = np.full(len(scores), "mirrored", dtype=object)
    chosen_index = np.zeros(len(scores), np.int64)
    settled = np.zeros(len(scores), bool)
    for kind, mask in allowed.items():
        masked = np.where(mask.ravel()[None, :], flat_scores, -np.inf)
        index = np.argmax(masked, axis=1) if len(scores) else np.empty(0, np.int64)
        good = ~settled & (masked[np.arange(len(scores)), index] >= best - kind_margin)
        chosen_kind[good] = kind
        chosen_index[good] = index[good]
        settled |= good
    shift_index, transform_index = np.divmod(chosen_index, len(grid.transforms))
    return VerifiedPairs(rows_a, rows_b, best.astype(np.float32),
                         shifts[shift_index % len(shifts)].astype(np.int8),
                         shifts[shift_index // len(shifts)].astype(np.int8),
                         scale_of[transform_index], mirrored_of[transform_index], chosen_kind)


def brute_force_similarity(image_a: np.ndarray, image_b: np.ndarray,
                           config: NearVerifyConfig = NearVerifyConfig()) -> float:
    """The full search by the book, one transform at a time with scipy.ndimage (for tests).

    Blur both images, resample image A's grid under each (scale, mirror) and image B's grid under
    each translation with `map_coordinates`, and take the best Pearson correlation.
    """
    from scipy import ndimage

    if min(_contrast(image_a[None])[0], _contrast(image_b[None])[0]) < config.min_contrast:
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
