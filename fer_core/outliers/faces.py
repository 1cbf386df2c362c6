"""Face presence: is there an upright, framed face in the image? (MTCNN, a pretrained detector.)

FER-2013's images were found by a face detector and cropped to the face, so a usable sample
holds one face that fills the frame, upright. Images a person would reject as "not a face"
are mostly photos where that fails: faces lying sideways or upside down, faces cut off by the
frame, a hand over the face, a tiny face, an eye or a mouth filling the image. A pretrained
face detector answers "is there a face, where, and how is it turned?" for those; pixel
statistics (`outliers.py`) cannot.

The detector is MTCNN from the `mtcnn` package (its TensorFlow networks and weights ship inside
the wheel, so it works offline). Its own `detect_faces` builds an image pyramid for faces from
20 px up, which on a small FER frame wastes most of the time on scales that cannot hold a face
filling the frame, and it passes every proposal on to the two refining networks. Here the same
three networks run on whole batches, the pyramid covers only faces between
`min_face_fraction` and the whole padded frame, and only each image's best few proposals are
refined: we need the best face per image, not every face.

Per image: `face_found`, `face_confidence` (ONet's face probability of the best box, 0 when no
proposal survived), `face_roll` (degrees the line between the eyes is turned from horizontal),
`face_size` (box side / frame side) and `face_offset` (distance of the box centre from the frame
centre / frame side). Pure: the audit caches the table per data fingerprint and config.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from fer_core.parallel import map_batches, thread_environment

Progress = Callable[[str, int, int], None]
STAGE = "faces"
FACE_COLUMNS = ("face_found", "face_confidence", "face_roll", "face_size", "face_offset")


@dataclass(frozen=True)
class DetectionPass:
    """How one detection pass prepares the images and which face sizes it searches."""

    equalize: bool  # stretch the grey levels first (many FER faces are dim or washed out)
    pad_fraction: float  # FER crops are tight: pad so a face filling the frame still fits a box
    min_face_fraction: float  # smallest face searched, as a share of the 48 px frame
    max_face_fraction: float = 1.0  # largest face searched (PNet's window), as a share of the frame


@dataclass(frozen=True)
class FaceConfig:
    """Detector settings (why each value: benchmarks/RESULTS_outliers.md, "Face stage")."""

    # Later passes, with other padding, pyramid and no equalizing, look only at the images the earlier
    # ones missed: MTCNN is sensitive to where the pyramid's scales fall and to faces larger than the
    # frame (close-ups). On the labelled sample three passes miss 31 upright faces where one missed 58.
    passes: tuple[DetectionPass, ...] = (DetectionPass(True, 0.125, 0.35), DetectionPass(False, 0.25, 0.42),
                                         DetectionPass(False, 0.5, 0.6, 1.6))
    scale_factor: float = 0.709  # MTCNN's own pyramid step
    threshold_pnet: float = 0.5  # MTCNN has 0.6 and 0.7: a little lower finds more dim and tilted faces
    threshold_rnet: float = 0.5
    threshold_onet: float = 0.8  # face_found: ONet's probability at least this (MTCNN's default)
    nms_pnet: float = 0.5
    nms_across_scales: float = 0.7
    nms_rnet: float = 0.7
    proposals_per_image: int = 12  # refine only each image's best PNet proposals ...
    refined_per_image: int = 2  # ... and its best RNet boxes
    batch_size: int = 256


def pyramid_scales(padded_side: int, frame_side: int, detection_pass: DetectionPass, scale_factor: float) -> np.ndarray:
    """Scales at which PNet's 12 px window covers faces from the pass's smallest to its largest face
    (and the scaled image still holds one window)."""
    smallest = max(12.0 / (detection_pass.max_face_fraction * frame_side), 12.0 / padded_side)
    scales = []
    scale = 12.0 / (detection_pass.min_face_fraction * frame_side)
    while scale >= smallest * 0.999:
        scales.append(scale)
        scale *= scale_factor
    return np.array(scales)


def _top_per_image(boxes: np.ndarray, count: int) -> np.ndarray:
    """The `count` highest-confidence rows of each image (column 0: image, column 5: confidence)."""
    if len(boxes) == 0:
        return boxes
    order = np.lexsort((-boxes[:, 5], boxes[:, 0]))
    boxes = boxes[order]
    image = boxes[:, 0]
    starts = np.r_[0, np.flatnonzero(image[1:] != image[:-1]) + 1]
    rank = np.arange(len(boxes)) - np.repeat(starts, np.diff(np.r_[starts, len(boxes)]))
    return boxes[rank < count]


class FaceDetector:
    """MTCNN's three networks (weights from the `mtcnn` wheel) run batch-wise on grey FER frames."""

    def __init__(self, config: FaceConfig = FaceConfig()) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        self.config = config
        # The networks carry float32 weights; a training run in this process may have set a mixed
        # precision policy (bfloat16 on some CPUs), under which they would be built in half precision.
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("float32")
        try:
            self.pnet = StagePNet()._model
            self.rnet = StageRNet()._model
            self.onet = StageONet()._model
        finally:
            keras.mixed_precision.set_global_policy(previous)

    def detect(self, pixels: np.ndarray) -> np.ndarray:
        """Best face per image: rows of [confidence, x1, y1, x2, y2, left-eye x, y, right-eye x, y]
        in the 48 px frame's coordinates (confidence 0 and NaN coordinates when nothing survived).
        Each pass after the first looks again only at the images still without a face."""
        result = np.full((len(pixels), 9), np.nan)
        result[:, 0] = 0.0
        todo = np.arange(len(pixels))
        for detection_pass in self.config.passes:
            if len(todo) == 0:
                break
            found = self.detect_once(pixels[todo], detection_pass)
            better = found[:, 0] > result[todo, 0]
            result[todo[better]] = found[better]
            todo = todo[result[todo, 0] < self.config.threshold_onet]
        return result

    def detect_once(self, pixels: np.ndarray, detection_pass: DetectionPass) -> np.ndarray:
        """One pass of `detect` over all of `pixels`."""
        import tensorflow as tf
        from mtcnn.utils.bboxes import (adjust_bboxes, generate_bounding_box, replace_confidence, resize_to_square,
                                        smart_nms_from_bboxes, upscale_bboxes)
        from mtcnn.utils.images import extract_patches
        from mtcnn.utils.landmarks import adjust_landmarks

        config = self.config
        count, frame = len(pixels), pixels.shape[1]
        pad = int(round(detection_pass.pad_fraction * frame))
        if detection_pass.equalize:
            pixels = np.stack([cv2.equalizeHist(np.ascontiguousarray(image)) for image in pixels])
        padded = np.pad(pixels, ((0, 0), (pad, pad), (pad, pad)), mode="edge").astype(np.float32)
        images = np.repeat(((padded - 127.5) / 128.0)[..., None], 3, axis=3)
        side = images.shape[1]
        result = np.full((count, 9), np.nan)
        result[:, 0] = 0.0

        proposals = []
        for scale in pyramid_scales(side, frame, detection_pass, config.scale_factor):
            scaled = tf.image.resize(images, (int(side * scale),) * 2, method=tf.image.ResizeMethod.AREA)
            regression, classes = self.pnet(scaled)
            boxes = generate_bounding_box(regression, classes, config.threshold_pnet)
            boxes = upscale_bboxes(boxes, np.full(count, scale))
            boxes = smart_nms_from_bboxes(boxes, threshold=config.nms_pnet, method="union", initial_sort=False)
            proposals.append(_top_per_image(boxes, config.proposals_per_image))
        boxes = np.concatenate(proposals) if proposals else np.empty((0, 6))
        if len(boxes) == 0:
            return result
        boxes = smart_nms_from_bboxes(boxes, threshold=config.nms_across_scales, method="union", initial_sort=True)
        boxes = resize_to_square(_top_per_image(boxes, config.proposals_per_image))

        offsets, scores = self.rnet(extract_patches(images, boxes, expected_size=(24, 24)))
        boxes = adjust_bboxes(replace_confidence(boxes, scores), np.asarray(offsets))
        boxes = boxes[boxes[:, 5] > config.threshold_rnet]
        if len(boxes) == 0:
            return result
        boxes = smart_nms_from_bboxes(boxes, threshold=config.nms_rnet, method="union", initial_sort=True)
        boxes = resize_to_square(_top_per_image(boxes, config.refined_per_image))

        offsets, landmarks, scores = self.onet(extract_patches(images, boxes, expected_size=(48, 48)))
        landmarks = adjust_landmarks(landmarks, boxes)
        boxes = adjust_bboxes(replace_confidence(boxes, scores), np.asarray(offsets))
        best = _top_per_image(np.concatenate([boxes, landmarks], axis=1), 1)
        rows = best[:, 0].astype(int)
        # landmark columns: x of (left eye, right eye, nose, mouth left, mouth right), then their y
        coordinates = best[:, [1, 2, 3, 4, 6, 11, 7, 12]] - pad
        result[rows, 0] = best[:, 5]
        result[rows, 1:] = coordinates
        return result


def describe_faces(raw: np.ndarray, frame_side: int, config: FaceConfig) -> pd.DataFrame:
    """The per-image columns from `FaceDetector.detect`'s rows."""
    confidence = raw[:, 0]
    x1, y1, x2, y2 = raw[:, 1], raw[:, 2], raw[:, 3], raw[:, 4]
    eye_dx, eye_dy = raw[:, 7] - raw[:, 5], raw[:, 8] - raw[:, 6]
    size = np.sqrt(np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)) / frame_side
    centre_x, centre_y = (x1 + x2) / 2 - frame_side / 2, (y1 + y2) / 2 - frame_side / 2
    return pd.DataFrame({
        "face_found": confidence >= config.threshold_onet,
        "face_confidence": confidence,
        "face_roll": np.degrees(np.arctan2(eye_dy, eye_dx)),
        "face_size": size,
        "face_offset": np.hypot(centre_x, centre_y) / frame_side,
    })


def find_faces(pixels: np.ndarray, *, progress: Progress | None = None,
               config: FaceConfig | None = None) -> pd.DataFrame:
    """Per image: face_found, face_confidence, face_roll, face_size, face_offset (see the module docstring).

    Pure: the audit (fer_core/audit.py) caches the table by the data's fingerprint and this config.
    """
    config = config or FaceConfig()
    report = progress or (lambda stage, done, total: None)
    frame = pixels.shape[1] if pixels.ndim == 3 else 48
    raw = np.full((len(pixels), 9), np.nan)
    raw[:, 0] = 0.0
    if len(pixels):
        report(STAGE, 0, len(pixels))
        stop = 0
        # in this process, or as Ray Data on the cluster when $FER_AUDIT_RAY_ADDRESS is set (fer_core.parallel)
        for found in map_batches(functools.partial(detect_batch, config=config), pixels, config.batch_size,
                                 environment=thread_environment(1)):
            raw[stop:stop + len(found)] = found
            stop += len(found)
            report(STAGE, stop, len(pixels))
    return describe_faces(raw, frame, config)


def detect_batch(pixels: np.ndarray, config: FaceConfig) -> np.ndarray:
    """`FaceDetector.detect` of one batch with this process's detector (pure: shipped to a cluster's workers)."""
    return face_detector(config).detect(np.asarray(pixels))


def skipped_table(count: int) -> pd.DataFrame:
    """The face columns of `count` images when the stage did not run: every cell empty."""
    table = pd.DataFrame({column: np.full(count, np.nan) for column in FACE_COLUMNS})
    table["face_found"] = pd.array([None] * count, dtype="boolean")
    return table


@functools.lru_cache(maxsize=2)
def face_detector(config: FaceConfig) -> FaceDetector:
    """One detector per config and process: building the three networks takes about a second."""
    return FaceDetector(config)
