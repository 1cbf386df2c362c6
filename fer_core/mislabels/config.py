"""How suspected mislabels are found (`MislabelConfig`), and how a computation reports progress and is cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD, check_near_threshold
from fer_core.training.config import TrainConfig

POOLINGS: tuple[str, ...] = ("near", "exact", "none")
FILTERS: tuple[str, ...] = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                            "predicted_neq_given")
RANK_METHODS: tuple[str, ...] = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
VALIDATION_USAGE = "PublicTest"
FOLD_OVERHEAD_SECONDS = 30.0  # a fold's model build, per-epoch validation and predictions (benchmarks/README.md)


@dataclass(frozen=True)
class MislabelConfig:
    """How suspected mislabels are found; every field is part of the cache key."""

    # 3 folds × 12 epochs rather than 5 × 5: the cost is (K-1) × epochs passes over Training, and at a
    # like cost fewer, longer-trained models rank planted flips better (one fold of each on planted
    # noise: held-out accuracy 0.52 / 0.55 / 0.56 and recall at precision 0.5 ≈ 0.47 / 0.53 / 0.55 for
    # 5 × 5, 3 × 10, 2 × 20; benchmarks/README.md, "Suspected mislabels on planted noise").
    folds: int = 3
    model: str = "cnn"
    size: str = "fast"
    epochs: int = 12
    batch_size: int = 128
    learning_rate: float = 2e-3
    patience: int = 3
    seed: int = 0
    pooling: str = "near"  # which duplicate groups share one suggestion
    near_threshold: int = DEFAULT_NEAR_THRESHOLD
    filter_by: str = "prune_by_noise_rate"
    rank_method: str = "self_confidence"

    def __post_init__(self) -> None:
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or not 2 <= self.folds <= 20:
            raise ValueError(f"folds must be an integer 2..20, got {self.folds!r}")
        for name, value, allowed in (("pooling", self.pooling, POOLINGS), ("filter_by", self.filter_by, FILTERS),
                                     ("rank_method", self.rank_method, RANK_METHODS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
        check_near_threshold(self.near_threshold)
        self.train_config(0)  # validates model, size, epochs, batch size, learning rate, patience, seed

    @property
    def epochs_to_run(self) -> int:
        """The epochs each fold's model trains for (its progress counts epochs per fold)."""
        return self.epochs

    def estimated_seconds(self, training_images: int, images_per_second: float | None = None) -> float:
        """Wall seconds to expect: each fold model's epochs over (K-1)/K of the Training images at
        `images_per_second` (measured on this machine), else at the size's reference speed (the idle 2-core
        dev VM), plus each fold's predictions and the start."""
        from fer_core.training.estimates import reference_images_per_second

        speed = images_per_second or reference_images_per_second(self.size, self.model)
        passes = (self.folds - 1) * self.epochs * training_images
        return passes / speed + self.folds * FOLD_OVERHEAD_SECONDS + 60.0

    def train_config(self, fold: int) -> TrainConfig:
        """The training recipe of one fold's model (its own seed, so folds differ in init and order)."""
        return TrainConfig(model=self.model, sampling="none", epochs=self.epochs, size=self.size,
                           batch_size=self.batch_size, seed=self.seed + fold, learning_rate=self.learning_rate,
                           patience=self.patience)


@dataclass(frozen=True)
class MislabelProgress:
    """Where a computation is: sent at each fold's start and end, after each epoch, every few seconds with the
    measured speed, and at ranking."""

    stage: str  # "fold", "epoch", "speed", "fold_done", "ranking", "done"
    fold: int  # 1-based; 0 before the first fold
    folds: int
    epoch: int = 0
    epochs: int = 0
    val_accuracy: float | None = None
    seconds: float = 0.0
    detail: str = ""  # "speed": the measured speed and the time left (fer_core.training.speed.SpeedReport)

    def describe(self) -> str:
        if self.stage in ("ranking", "done"):
            return f"{self.stage} ({self.folds} folds trained)"
        text = f"fold {self.fold}/{self.folds}"
        if self.stage == "speed":
            text += f", {self.detail}"
        elif self.stage == "epoch":
            text += f", epoch {self.epoch}/{self.epochs}, val accuracy {self.val_accuracy:.3f}"
        elif self.stage == "fold_done":
            text += " done"
        return text


ProgressCallback = Callable[[MislabelProgress], None]


StopCheck = Callable[[], bool]


class MislabelsCancelled(Exception):
    """Raised when `should_stop` says so (checked at each epoch's end and between folds)."""
