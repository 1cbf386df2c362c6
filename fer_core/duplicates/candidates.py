"""Candidate near-duplicate pairs, cheap and with high recall; `fer_core.duplicates.verification` decides on pixels.

The union of pHash pairs within `hash_radius` bits (direct, and against each image's mirror) and
whitened shape-descriptor neighbours (see `fer_core/duplicates/verification.py`'s module docstring). Matrix
products here are small: they run with BLAS on one thread (`near_views.one_blas_thread`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fer_core.dataset.pixel_store import iterate_chunks
from fer_core.duplicates.hashing import find_close_pairs
from fer_core.duplicates.pixel_views import one_blas_thread
from fer_core.duplicates.verification import NearVerifyConfig

DESCRIPTOR_SIDE = 24
DESCRIPTOR_CELLS = 4
DESCRIPTOR_CHANNELS = 5  # magnitude, cos 2θ, sin 2θ, cos 4θ, sin 4θ
MIRROR_SIGNS = np.array([1, 1, -1, 1, -1], np.float32)
# Blocks of the descriptor search: one of more images is split into blocks of about SPLIT_BLOCK (FER-2013's
# largest of 64 holds 2,245 distinct images, so FER-2013 is never split; a million images would be).
MAX_BLOCK = 2400
SPLIT_BLOCK = 600
TIGHTEN_AFTER_PROBES = (1, 3)  # after these probes, hits that cannot be chosen any more are dropped
SEARCH_THREADS = 2  # threads of the candidate search: numpy's products and sorts release the GIL
SELECT_QUERIES = 1 << 17  # queries (images and mirrors) whose hits are ranked at once (FER-2013: its 68,068 in one go)


def _pooling_matrix(side: int, cells: int) -> np.ndarray:
    """Soft cells: each row a Gaussian over pixel centres, so a small shift moves weight smoothly."""
    centers = (np.arange(cells) + 0.5) * side / cells
    positions = np.arange(side) + 0.5
    weights = np.exp(-0.5 * ((positions[None] - centers[:, None]) / (side / cells / 1.5)) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


@one_blas_thread
def shape_descriptors(pixels: np.ndarray, chunk_size: int = 1024, rows: np.ndarray | None = None) -> np.ndarray:
    """N×80 unit vectors: gradient orientation statistics of the 24×24 image over 4×4 soft cells.

    Per pixel, the gradient magnitude m and its unsigned orientation θ as m·(1, cos 2θ, sin 2θ,
    cos 4θ, sin 4θ) — a smooth orientation histogram (HOG-like, without binning, so no arctan
    and no scatter) — pooled over Gaussian cells that overlap, so a shift of a few pixels or a
    10 % crop changes the vector little while different faces still differ. Of the given ascending
    `rows` only, when given (read a chunk at a time: no copy of the whole store).
    """
    pooling = _pooling_matrix(DESCRIPTOR_SIDE, DESCRIPTOR_CELLS)
    out = np.empty((len(pixels) if rows is None else len(rows), DESCRIPTOR_CHANNELS * DESCRIPTOR_CELLS ** 2),
                   np.float32)
    for start, images in iterate_chunks(pixels, chunk_size, rows):
        images = np.asarray(images, dtype=np.uint8)
        # 2×2 sums: the 24×24 image (scaled by 4, which the normalisation removes)
        small = (images[:, 0::2, 0::2].astype(np.float32) + images[:, 1::2, 0::2] + images[:, 0::2, 1::2]
                 + images[:, 1::2, 1::2])
        gx = np.zeros_like(small)
        gy = np.zeros_like(small)
        gx[:, :, 1:-1] = small[:, :, 2:] - small[:, :, :-2]
        gy[:, 1:-1, :] = small[:, 2:, :] - small[:, :-2, :]
        channels = np.empty((len(images), DESCRIPTOR_CHANNELS) + small.shape[1:], np.float32)  # n × 5 × 24 × 24
        magnitude, cos2, sin2, cos4, sin4 = (channels[:, index] for index in range(DESCRIPTOR_CHANNELS))
        np.hypot(gx, gy, out=magnitude)
        inverse = 1.0 / (magnitude + 1e-3)
        np.multiply(gx * gx - gy * gy, inverse, out=cos2)  # m·cos 2θ
        np.multiply(2.0 * gx * gy, inverse, out=sin2)  # m·sin 2θ
        np.multiply(cos2 * cos2 - sin2 * sin2, inverse, out=cos4)
        np.multiply(2.0 * cos2 * sin2, inverse, out=sin4)
        # pooling @ channel @ pooling.T as two large matrix products (tiny stacked ones are slow):
        # pool the columns, then the rows of the transposed result, and transpose back
        columns = (channels.reshape(-1, DESCRIPTOR_SIDE) @ pooling.T).reshape(-1, DESCRIPTOR_SIDE, DESCRIPTOR_CELLS)
        rows = np.ascontiguousarray(columns.transpose(0, 2, 1)).reshape(-1, DESCRIPTOR_SIDE) @ pooling.T
        features = rows.reshape(len(images), DESCRIPTOR_CHANNELS, DESCRIPTOR_CELLS, DESCRIPTOR_CELLS
                                ).transpose(0, 1, 3, 2).reshape(len(images), -1)
        out[start:start + len(images)] = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-6)
    return out


def mirror_descriptors(descriptors: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Descriptors of the mirrored images: cells flipped left–right, θ → π − θ (the sines change sign);
    written into `out` when given."""
    cells = descriptors.reshape(len(descriptors), DESCRIPTOR_CHANNELS, DESCRIPTOR_CELLS, DESCRIPTOR_CELLS)
    out = np.empty(descriptors.shape, descriptors.dtype) if out is None else out
    np.multiply(cells[:, :, :, ::-1], MIRROR_SIGNS[None, :, None, None], out=out.reshape(cells.shape))
    return out


def with_mirrors(descriptors: np.ndarray) -> np.ndarray:
    """The descriptors, then their mirror images', in one array."""
    both = np.empty((2 * len(descriptors), descriptors.shape[1]), descriptors.dtype)
    both[:len(descriptors)] = descriptors
    mirror_descriptors(descriptors, out=both[len(descriptors):])
    return both


def whiten_descriptors(descriptors: np.ndarray, dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the descriptors, and of their mirror images, half-whitened over the data set
    (and its mirror) and kept to the `dimensions` principal components of largest variance.

    Faces share most of their gradient layout, so raw descriptors of different faces are close
    (cosine ≥ 0.96 for most neighbours); whitening weighs what varies between faces, and puts a
    copy's original among its first 4 neighbours more often than the raw descriptor does. The
    components of least variance carry mostly noise; dropping them makes the search cheaper.
    """
    whitened = whiten_in_place(with_mirrors(descriptors), dimensions)
    return whitened[:len(descriptors)], whitened[len(descriptors):]


def whiten_in_place(both: np.ndarray, dimensions: int, chunk: int = 1 << 16) -> np.ndarray:
    """`whiten_descriptors` of the descriptors and their mirrors stacked in `both`, which it centres in
    place; the whitened vectors are made a chunk at a time (no second copy of the raw ones)."""
    mean = both.mean(axis=0)
    both -= mean
    eigenvalues, eigenvectors = np.linalg.eigh((both.T @ both).astype(np.float64) / len(both))  # ascending
    # halfway whitening (variance^-1/4): full whitening (^-1/2) ranks planted copies as well but
    # loses real cropped copies among faces that vary little (docs/METHODS.md, "Near duplicates").
    # A tiny or flat dataset has zero (or rounding-negative) variances: floor them, so no power of 0 is taken.
    variances = np.maximum(eigenvalues, 0.0) + 1e-6 * max(float(eigenvalues.max()), 1e-12)
    projection = (eigenvectors * variances ** -0.25)[:, -dimensions:].astype(np.float32)
    whitened = np.empty((len(both), projection.shape[1]), np.float32)
    for start in range(0, len(both), chunk):
        part = both[start:start + chunk] @ projection
        whitened[start:start + chunk] = part / (np.linalg.norm(part, axis=1, keepdims=True) + 1e-6)
    return whitened


def descriptor_blocks(descriptors: np.ndarray, config: NearVerifyConfig) -> tuple[np.ndarray, np.ndarray]:
    """(block centres, each image's block): k-means (scipy's, on a sample of the raw descriptors, whose
    crowding the blocks follow) into `descriptor_clusters` blocks, each image in the block of the
    nearest centre; a block of more than `MAX_BLOCK` images is split again the same way into blocks of
    about `SPLIT_BLOCK`, so that the search stays linear in the number of images (64 blocks of a
    million faces hold 15,000 each, and each query would compare with 8 of them)."""
    from scipy.cluster.vq import kmeans2  # scipy is loaded already; importing scikit-learn costs seconds

    count = len(descriptors)
    clusters = int(min(config.descriptor_clusters, max(1, count // 200)))
    rng = np.random.default_rng(config.seed)
    sample = descriptors[rng.choice(count, min(count, 100 * clusters), replace=False)]
    centers, _ = kmeans2(sample.astype(np.float64), clusters, iter=10, minit="points", seed=config.seed)
    centers = centers.astype(np.float32)
    home = _nearest_center(descriptors, centers)
    sizes = np.bincount(home, minlength=clusters)
    if sizes.max() <= MAX_BLOCK:
        return centers, home
    leaf_centers, leaf_home = [], np.empty(count, np.int64)
    by_block = np.argsort(home, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for block in range(clusters):
        members = by_block[bounds[block]:bounds[block + 1]]
        offset = sum(len(part) for part in leaf_centers)
        if len(members) <= MAX_BLOCK:
            leaf_centers.append(centers[block:block + 1])
            leaf_home[members] = offset
            continue
        parts = -(-len(members) // SPLIT_BLOCK)
        chosen = members[np.random.default_rng([config.seed, block]).choice(
            len(members), min(len(members), 100 * parts), replace=False)]
        sub_centers, _ = kmeans2(descriptors[chosen].astype(np.float64), parts, iter=10, minit="points",
                                 seed=config.seed + 1 + block)
        sub_centers = sub_centers.astype(np.float32)
        leaf_centers.append(sub_centers)
        leaf_home[members] = offset + _nearest_center(descriptors[members], sub_centers)
    return np.concatenate(leaf_centers), leaf_home


def _nearest_center(vectors: np.ndarray, centers: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    return np.concatenate([np.argmax(vectors[start:start + chunk] @ centers.T, axis=1)
                           for start in range(0, len(vectors), chunk)])


def _nearest_blocks(queries: np.ndarray, centers: np.ndarray, probes: int) -> np.ndarray:
    """Each query's `probes` nearest block centres, nearest first (in chunks of about 4 million
    similarities: two million queries by two thousand centres would be 16 GB at once)."""
    out = np.empty((len(queries), probes), np.int32)
    chunk = max(1, (1 << 22) // len(centers))
    for start in range(0, len(queries), chunk):
        similarity = queries[start:start + chunk] @ centers.T
        if probes < similarity.shape[1]:
            top = np.argpartition(-similarity, probes - 1, axis=1)[:, :probes]
        else:
            top = np.broadcast_to(np.arange(similarity.shape[1]), similarity.shape)
        ranked = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1, kind="stable")
        out[start:start + chunk] = np.take_along_axis(top, ranked, axis=1)
    return out


@one_blas_thread
def descriptor_candidates(descriptors: np.ndarray, config: NearVerifyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j): each image's `descriptor_neighbours` nearest whitened descriptors, and its mirror's.

    Blocked search (`descriptor_blocks`): each image and each mirrored image looks only in its
    `descriptor_probes` nearest blocks and keeps its nearest neighbours there, by the whitened
    descriptors. Ranks, not a fixed cosine: faces crowd together unevenly.
    """
    count = len(descriptors)
    neighbours = min(config.descriptor_neighbours, count - 1)
    if neighbours < 1:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    centers, home = descriptor_blocks(descriptors, config)
    clusters = len(centers)
    by_block = np.argsort(home, kind="stable").astype(np.int32)
    block_bounds = np.searchsorted(home[by_block], np.arange(clusters + 1))
    probes = min(config.descriptor_probes, clusters)
    both = with_mirrors(descriptors)
    probed = _nearest_blocks(both, centers, probes)
    queries = whiten_in_place(both, config.descriptor_dimensions)  # the images', then their mirrors'
    del both
    whitened = queries[:count]
    keep = neighbours + 1  # +1: an image (or its mirror) may find itself
    dense_keep = max(keep, min(config.descriptor_dense_neighbours + 1, count))
    found_query, found_member, found_similarity = [], [], []
    # In its nearest block each query takes its best `keep` (a partition, no sort), and up to
    # `dense_keep` that reach the dense similarity; the worst of those is a floor that anything
    # from its other blocks must reach to matter.
    floor = np.full(len(queries), -np.inf, np.float32)

    def search(block: int, probe: int, asking: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The hits of the queries whose `probe`-th nearest block is `block` (each query is in one block a
        probe, so the threads never write the same floor)."""
        members = by_block[block_bounds[block]:block_bounds[block + 1]]
        similarity = queries[asking] @ whitened[members].T
        if probe == 0 and len(members) > keep:
            ranked = np.partition(similarity, (len(members) - keep, max(0, len(members) - dense_keep)), axis=1)
            floor[asking] = np.minimum(ranked[:, len(members) - keep], np.maximum(
                ranked[:, max(0, len(members) - dense_keep)], config.descriptor_dense_similarity))
        hits = np.flatnonzero(similarity >= floor[asking][:, None])
        hit_query, hit_member = np.divmod(hits, len(members))
        return asking[hit_query], members[hit_member], similarity.ravel()[hits]

    pool = ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="fer-descriptors")
    for probe in range(probes):
        by_probe = np.argsort(probed[:, probe], kind="stable").astype(np.int32)
        probe_bounds = np.searchsorted(probed[by_probe, probe], np.arange(clusters + 1))
        work = [(block, by_probe[probe_bounds[block]:probe_bounds[block + 1]]) for block in range(clusters)
                if block_bounds[block + 1] > block_bounds[block] and probe_bounds[block + 1] > probe_bounds[block]]
        # in block order whatever the threads: the hits come out as one thread would find them
        for block_query, block_member, block_similarity in pool.map(
                lambda item, probe=probe: search(item[0], probe, item[1]), work):
            found_query.append(block_query)
            found_member.append(block_member)
            found_similarity.append(block_similarity)
        if probe in TIGHTEN_AFTER_PROBES and probe < probes - 1:
            found_query, found_member, found_similarity = (
                [values] for values in _tighten([np.concatenate(found_query), np.concatenate(found_member),
                                                 np.concatenate(found_similarity)], floor, keep, dense_keep,
                                                config.descriptor_dense_similarity))
    pool.shutdown()
    del queries, whitened
    found = [np.concatenate(found_query), np.concatenate(found_member), np.concatenate(found_similarity)]
    del found_query, found_member, found_similarity
    chosen = []
    for first in range(0, 2 * count, SELECT_QUERIES):  # a range of queries at a time: the sort takes 40 B a hit
        inside = np.flatnonzero((found[0] >= first) & (found[0] < first + SELECT_QUERIES))
        query, member, similarity = (values[inside] for values in found)
        # over all probed blocks, keep each query's best `neighbours`
        order = np.argsort(query + (1.0 - similarity.astype(np.float64)) / 4)  # by query, then most similar first
        query, member = query[order], member[order]
        rank = np.arange(len(query)) - np.searchsorted(query, query)
        similarity = similarity[order]
        best = ((rank < keep) | ((rank < dense_keep) & (similarity >= config.descriptor_dense_similarity))) \
            & (query % count != member)
        chosen.append(_unique_pairs(query[best] % count, member[best], count))
    del found, inside, query, member, similarity, order, rank, best
    return _unique_pairs(np.concatenate([a for a, _ in chosen]), np.concatenate([b for _, b in chosen]), count)


def _tighten(found: list[np.ndarray], floor: np.ndarray, keep: int, dense_keep: int,
             dense_similarity: float) -> list[np.ndarray]:
    """Raise each query's floor (in place) to what its hits so far already decide, and drop the hits below
    it: a hit under its query's `keep`-th best that is also under the dense similarity or its
    `dense_keep`-th best can never be chosen. The same choice, with fewer hits kept (41 a query at 4×
    FER-2013 size, a gigabyte for a million images)."""
    query, similarity = found[0], found[2]
    order = np.lexsort((-similarity, query))  # by query, most similar first
    ranked_query, ranked = query[order], similarity[order]
    starts = np.searchsorted(ranked_query, np.arange(len(floor) + 1))
    counts = np.diff(starts)
    kth = np.full(len(floor), -np.inf, np.float32)
    has = counts >= keep
    kth[has] = ranked[starts[:-1][has] + keep - 1]
    dense = np.full(len(floor), -np.inf, np.float32)
    has_dense = counts >= dense_keep
    dense[has_dense] = ranked[starts[:-1][has_dense] + dense_keep - 1]
    np.maximum(floor, np.where(has, np.minimum(kth, np.maximum(dense, dense_similarity)), -np.inf), out=floor)
    kept = similarity >= floor[query]
    return [values[kept] for values in found]


def hash_candidates(hashes: np.ndarray, mirror_hashes: np.ndarray, radius: int,
                    mirror_radius: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of rows whose pHashes are within `radius`, or one's pHash and the other's mirror
    pHash within `mirror_radius` (default: `radius`; a narrower one costs less, as the mirror doubles
    the hashes searched)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    count = len(hashes)
    mirror_radius = radius if mirror_radius is None else min(mirror_radius, radius)
    with ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="fer-hashes") as pool:  # two searches side by side
        mirrored = pool.submit(_rows_within, np.concatenate([hashes, np.asarray(mirror_hashes, dtype=np.uint64)]),
                               mirror_radius)
        direct = pool.submit(_rows_within, hashes, radius) if mirror_radius < radius else None
        row_a, row_b = mirrored.result()
        # a mirror hash against a mirror hash is the same comparison as the two pHashes: keep pairs with a pHash side
        keep = (row_a < count) | (row_b < count)
        row_a, row_b = row_a[keep] % count, row_b[keep] % count
        if direct is not None:
            direct_a, direct_b = direct.result()
            row_a, row_b = np.concatenate([row_a, direct_a]), np.concatenate([row_b, direct_b])
    return _unique_pairs(row_a, row_b, count)


def _rows_within(values: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of positions whose hashes are within `radius` bits, equal hashes included (both orders)."""
    unique, inverse = np.unique(values, return_inverse=True)
    a, b, _ = find_close_pairs(unique, radius)
    values_a = np.concatenate([a, b, np.arange(len(unique))])
    values_b = np.concatenate([b, a, np.arange(len(unique))])
    # positions holding each hash value
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
    sizes = starts[1:] - starts[:-1]
    pair_counts = sizes[values_a] * sizes[values_b]
    left = np.repeat(values_a, pair_counts)
    offsets = np.arange(pair_counts.sum()) - np.repeat(np.cumsum(pair_counts) - pair_counts, pair_counts)
    right_size = np.repeat(sizes[values_b], pair_counts)
    return (order[starts[left] + offsets // right_size],
            order[starts[np.repeat(values_b, pair_counts)] + offsets % right_size])


def _unique_pairs(a: np.ndarray, b: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    low, high = np.minimum(a, b), np.maximum(a, b)
    codes = np.unique(low[low != high] * count + high[low != high])
    return codes // count, codes % count


def find_candidates(pixels: np.ndarray, hashes: np.ndarray, mirror_hashes: np.ndarray,
                    config: NearVerifyConfig = NearVerifyConfig(),
                    rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (i < j): pHash neighbours (direct and mirrored) ∪ shape-descriptor neighbours; among
    the given ascending `rows` of `pixels` when given (i and j then index `rows`; hashes are theirs)."""
    hash_a, hash_b = hash_candidates(hashes, mirror_hashes, config.hash_radius, config.mirror_hash_radius)
    shape_a, shape_b = descriptor_candidates(shape_descriptors(pixels, rows=rows), config)
    return _unique_pairs(np.concatenate([hash_a, shape_a]), np.concatenate([hash_b, shape_b]), len(hashes))
