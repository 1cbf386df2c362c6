import numpy as np
import pytest
from PIL import Image
from synthetic import draw_face, jpeg_round_trip, shift_one_pixel

from fer_core.duplicates.hashing import (chunk_plan, exact_digests, find_close_pairs, find_near_links, hamming_distance,
                                         phash_batch, resize_like_pil)

imagehash = pytest.importorskip("imagehash")


def golden_images() -> dict[str, np.ndarray]:
    y, x = np.mgrid[0:48, 0:48]
    return {
        "gradient": ((x * 5 + y * 2) % 256).astype(np.uint8),
        "checker": (((x // 6 + y // 6) % 2) * 255).astype(np.uint8),
        "ring": (127 + 120 * np.cos(np.hypot(x - 24, y - 20) / 3)).astype(np.uint8),
    }


GOLDEN = {"gradient": "92256a1655575d57", "checker": "8000000000000000", "ring": "a1a117877a9e685e"}


def test_phash_golden_values():
    images = golden_images()
    hashes = phash_batch(np.stack([images[name] for name in GOLDEN]))
    assert [f"{value:016x}" for value in hashes.tolist()] == list(GOLDEN.values())


def test_phash_matches_imagehash_on_random_and_drawn_images():
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(50)]
    images += [draw_face(rng) for _ in range(50)]
    images.append(np.zeros((48, 48), np.uint8))
    ours = phash_batch(np.stack(images))
    theirs = [int(str(imagehash.phash(Image.fromarray(image))), 16) for image in images]
    assert ours.tolist() == theirs


def test_phash_matches_imagehash_on_real_images(real_data):
    paths = sorted((real_data / "test" / "disgust").glob("*.jpg"))[:300]
    images = np.stack([np.asarray(Image.open(path).convert("L")) for path in paths])
    theirs = [int(str(imagehash.phash(Image.open(path))), 16) for path in paths]
    assert phash_batch(images).tolist() == theirs


def test_batched_resize_equals_per_image_pil_resize():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (20, 48, 48), dtype=np.uint8)
    expected = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.Resampling.LANCZOS)) for im in images])
    np.testing.assert_array_equal(resize_like_pil(images, 32), expected)


def test_small_edits_stay_close_and_distinct_faces_are_far():
    rng = np.random.default_rng(7)
    face = draw_face(rng)
    resized_back = np.asarray(Image.fromarray(face).resize((40, 40)).resize((48, 48)))
    variants = phash_batch(np.stack([face, shift_one_pixel(face), jpeg_round_trip(face), resized_back]))
    assert hamming_distance(variants[0], variants[1:]).max() <= 4
    others = phash_batch(np.stack([draw_face(rng) for _ in range(30)]))
    distances = hamming_distance(others[:, None], others[None, :])[np.triu_indices(30, 1)]
    assert np.median(distances) >= 16


def test_exact_digests_equal_only_for_identical_pixels():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    b = a.copy()
    b[0, 0] ^= 1
    digests = exact_digests(np.stack([a, a.copy(), b]))
    assert digests[0] == digests[1] != digests[2]


@pytest.mark.parametrize("radius", [1, 2, 4, 6, 8])
def test_index_finds_exactly_the_brute_force_pairs(radius):
    rng = np.random.default_rng(radius)
    base = rng.integers(0, 2**63, 3000, dtype=np.int64).astype(np.uint64)
    # plant near neighbours by flipping 1..radius+2 random bits
    flips = [np.bitwise_or.reduce(np.uint64(1) << rng.choice(64, k, replace=False).astype(np.uint64))
             for k in rng.integers(1, radius + 3, 400)]
    hashes = np.unique(np.concatenate([base, base[:400] ^ np.array(flips, dtype=np.uint64)]))
    a, b, d = find_close_pairs(hashes, radius)
    distances = hamming_distance(hashes[:, None], hashes[None, :])
    want_a, want_b = np.nonzero(np.triu(distances <= radius, 1))
    assert sorted(zip(a.tolist(), b.tolist())) == sorted(zip(want_a.tolist(), want_b.tolist()))
    assert (d == distances[a, b]).all()


def test_chunk_plan_guarantees_a_shared_key():
    for radius in range(0, 12):
        chunks, agree = chunk_plan(radius, 1_000_000)
        assert chunks - agree == radius  # pigeonhole: ≤ radius chunks differ


def test_near_links_connect_copies_without_quadratic_pairs():
    hashes = np.array([5] * 1000 + [7], dtype=np.uint64)  # 5 and 7 differ by one bit
    i, j, d = find_near_links(hashes, 1)
    assert len(i) == 1000  # 999 copy links + one link between the two distinct values
    assert d.max() == 1


def test_mirror_phash_is_the_phash_of_the_mirrored_image(real_data):
    from fer_core.duplicates.hashing import phash_and_mirror_batch

    paths = sorted((real_data / "train" / "fear").glob("*.jpg"))[:200]
    images = np.stack([np.asarray(Image.open(path).convert("L")) for path in paths])
    rng = np.random.default_rng(8)
    images = np.concatenate([images, np.stack([draw_face(rng) for _ in range(30)])])
    hashes, mirror_hashes = phash_and_mirror_batch(images)
    assert hashes.tolist() == phash_batch(images).tolist()
    theirs = [int(str(imagehash.phash(Image.fromarray(np.ascontiguousarray(image[:, ::-1])))), 16) for image in images]
    assert mirror_hashes.tolist() == theirs
