"""What a training run is asked to do (`TrainConfig`), its one JSON form, and its per-epoch progress line.

A config travels as JSON everywhere (the CLI's `--config-json`, the jobs table, local workers
and Ray), through `to_json`/`from_json`, which walk the dataclass fields: a field added later is
carried without touching any of them. The epoch line (`format_epoch_line`, `parse_epoch_lines`)
is printed by workers and read back from Ray's logs, so both directions live here, side by side.
Importing this module never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from fer_core.duplicates.limits import check_near_mode, check_near_threshold
from fer_core.training.models import MODEL_NAMES, SIZES, validate_variant
from fer_core.training.sampling import validate_sampling

# Upper bounds checked at construction (so at submit): a typo such as 99999999999999999999 epochs
# must fail before a run starts, not with an OverflowError an epoch later.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 8192
MAX_LIMIT = 10_000_000
MAX_SEED = 2**32 - 1  # numpy's and Keras's seed range
# Epochs when a config leaves them out: what each size needs to converge on its device (the `fast`
# recipe's warm-up + cosine schedule is laid out over exactly these epochs; `full` is for a GPU).
DEFAULT_EPOCHS = {"tiny": 3, "fast": 10, "full": 40}


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how; validated on creation, so an invalid config never starts a run."""

    model: str = "cnn"
    sampling: str = "none"
    epochs: int | None = None  # None: the size's default (DEFAULT_EPOCHS)
    size: str = "full"
    batch_size: int = 128
    seed: int = 0
    limit: int | None = None
    raw: bool = False
    near_threshold: int | None = None  # None: duplicates.DEFAULT_NEAR_THRESHOLD, the audit's threshold
    # How a leaked test image is found: "verified" near pairs (the audit's default: shifted, cropped
    # and mirrored copies too) or "hash" (pHashes within near_threshold, the original method)
    near_mode: str = "verified"
    learning_rate: float = 2e-3  # Adam's peak, after the warm-up
    patience: int = 5
    variant: str | None = None  # None: the model's default variant (models.model_variants)
    deterministic: bool = False  # op determinism: bit-identical reruns, at a cost in CPU speed

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; expected one of {', '.join(MODEL_NAMES)}")
        validate_sampling(self.sampling)
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; expected one of {', '.join(SIZES)}")
        validate_variant(self.model, self.variant)
        if self.epochs is not None:
            check_range("epochs", self.epochs, 1, MAX_EPOCHS)
        check_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_range("patience", self.patience, 1, MAX_EPOCHS)
        check_range("seed", self.seed, 0, MAX_SEED)
        if self.limit is not None:
            check_range("limit", self.limit, 1, MAX_LIMIT, unit=" (number of Training images)")
        if self.near_threshold is not None:
            check_near_threshold(self.near_threshold)
        check_near_mode(self.near_mode)
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive (and finite), got {self.learning_rate!r}")

    @property
    def epochs_to_run(self) -> int:
        """The epochs a run trains for: `epochs`, else the default of its size."""
        return self.epochs if self.epochs is not None else DEFAULT_EPOCHS[self.size]

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (plain JSON types)."""
        return config_to_dict(self)

    def to_json(self) -> str:
        """The config's one serialization: a JSON object of every field, keys sorted."""
        return config_to_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """The config of a dict from `to_dict`; missing fields take their defaults; ValueError on unknown keys."""
        return config_from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        """The config of a `to_json` string; one-line ValueError when it is not a valid config."""
        return config_from_json(cls, text)


ConfigType = typing.TypeVar("ConfigType")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Every field of a config dataclass by name."""
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}


def config_to_json(config: Any) -> str:
    """A config dataclass as a JSON object of every field, keys sorted (read back by `config_from_json`)."""
    return json.dumps(config_to_dict(config), sort_keys=True)


def config_from_dict(config_class: type[ConfigType], data: Any) -> ConfigType:
    """Build a frozen config dataclass from a dict of its fields (for TrainConfig and other job kinds' configs)."""
    name = config_class.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{name} must be a JSON object, got {type(data).__name__}")
    known = [field.name for field in dataclasses.fields(config_class)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {name} field(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(known)}")
    return config_class(**data)


def config_from_json(config_class: type[ConfigType], text: str) -> ConfigType:
    """`config_from_dict` of a JSON text; one-line ValueError when the text is not JSON."""
    try:
        data = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_class.__name__} JSON is not valid JSON ({error})") from None
    return config_from_dict(config_class, data)


def check_field_types(config: Any) -> None:
    """ValueError when a field's value does not match its annotation (bool is not an int; an int is a float).

    Generic over the fields, so a config read from JSON gets the same checks as one built in code.
    """
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        allowed = _allowed_types(hints[field.name])
        if allowed is not None and not _is_instance(value, allowed):
            expected = " or ".join("null" if kind is type(None) else kind.__name__ for kind in allowed)
            raise ValueError(f"{field.name} must be {expected}, got {value!r}")


def _allowed_types(hint: Any) -> tuple[type, ...] | None:
    """The plain classes a hint accepts, or None when it is not a plain class or a union of them."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
    else:
        members = (hint,)
    if not all(isinstance(member, type) for member in members):
        return None
    return tuple(members)


def _is_instance(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, allowed)


def check_range(name: str, value: int, low: int, high: int, unit: str = "") -> None:
    """ValueError naming the field, the allowed range and the value when an integer lies outside it."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        if high <= 64:  # a short range reads best whole
            wanted = f"{low}..{high}"
        elif isinstance(value, int) and not isinstance(value, bool) and value > high:
            wanted = f"at most {high:,}"
        else:
            wanted = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {wanted}{unit}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Progress


@dataclass(frozen=True)
class EpochProgress:
    """One finished epoch, as sent to the `on_epoch` callback (a job runner stores these)."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


EpochCallback = Callable[[EpochProgress], None]

_NUMBER = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
_EPOCH_LINE = re.compile(rf"^epoch (\d+)/(\d+): loss {_NUMBER}, accuracy {_NUMBER}, val_loss {_NUMBER}, "
                         rf"val_accuracy {_NUMBER} \({_NUMBER} s\)", re.MULTILINE)


def format_epoch_line(progress: EpochProgress) -> str:
    """The line a run prints after each epoch (`epoch 3/10: loss …, accuracy …, val_loss …, val_accuracy … (… s)`)."""
    return (f"epoch {progress.epoch}/{progress.epochs}: loss {progress.loss:.4f}, accuracy {progress.accuracy:.4f}, "
            f"val_loss {progress.val_loss:.4f}, val_accuracy {progress.val_accuracy:.4f} ({progress.seconds:.1f} s)")


def parse_epoch_lines(log: str) -> list[EpochProgress]:
    """Every epoch line in a log (other lines ignored), read back into EpochProgress."""
    return [EpochProgress(int(match[1]), int(match[2]), *(float(match[index]) for index in range(3, 8)))
            for match in _EPOCH_LINE.finditer(log)]
