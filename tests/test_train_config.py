"""TrainConfig: one JSON form carrying every field, validation with bounds, the epoch progress line."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from fer_core.duplicates.limits import NEAR_MODES
from fer_core.training.config import (MAX_BATCH_SIZE, MAX_EPOCHS, MAX_LIMIT, EpochProgress, TrainConfig,
                                      format_epoch_line, parse_epoch_lines)
from fer_core.training.models import MODEL_NAMES, SIZES
from fer_core.training.sampling import SAMPLING_NAMES

STRING_CHOICES = {"model": MODEL_NAMES, "sampling": SAMPLING_NAMES, "size": SIZES,
                  "variant": ("standard",),  # the last model (xception) has one variant
                  "near_mode": NEAR_MODES}
OPTIONAL_INT_VALUES = {"limit": 500, "near_threshold": 3}


def non_default_config(**overrides) -> TrainConfig:
    """A valid TrainConfig whose every field differs from its default (so a lost field shows).

    Generic over the fields: a field added later gets a value from its type, so the round-trip
    tests cover it without an edit; a new string field needs its choices in STRING_CHOICES.
    """
    hints = typing.get_type_hints(TrainConfig)
    values = {}
    for field in dataclasses.fields(TrainConfig):
        default, hint = field.default, hints[field.name]
        if field.name in STRING_CHOICES:
            values[field.name] = next(choice for choice in reversed(STRING_CHOICES[field.name]) if choice != default)
        elif hint is bool:
            values[field.name] = not default
        elif field.name in OPTIONAL_INT_VALUES:
            values[field.name] = OPTIONAL_INT_VALUES[field.name]
        elif default is None and int in typing.get_args(hint):
            values[field.name] = 2
        elif hint is int:
            values[field.name] = default + 1
        elif hint is float:
            values[field.name] = default / 2
        else:
            raise AssertionError(f"no non-default test value for TrainConfig.{field.name} ({hint}); add one here")
    values.update(overrides)
    config = TrainConfig(**values)
    same = [field.name for field in dataclasses.fields(config) if getattr(config, field.name) == field.default]
    assert not same, f"fields left at their default: {same}"
    return config


def test_json_round_trip_keeps_every_field():
    config = non_default_config()
    assert TrainConfig.from_json(config.to_json()) == config
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_json("{}") == TrainConfig()  # missing fields take their defaults


@pytest.mark.parametrize("text, message", [
    ('{"model": "cnn", "colour": "red"}', "unknown TrainConfig field.*'colour'"),
    ('{"epochs": "3"}', "epochs must be int or null, got '3'"),
    ('{"raw": 1}', "raw must be bool, got 1"),
    ('{"epochs": true}', "epochs must be int or null, got True"),
    ('{"limit": 1.5}', "limit must be int or null"),
    ('[1, 2]', "must be a JSON object"),
    ('{"epochs": 3', "not valid JSON"),
    ('{"model": "resnet"}', "unknown model 'resnet'"),
    ('{"learning_rate": 0}', "learning_rate must be positive"),
])
def test_bad_json_is_a_one_line_value_error(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        TrainConfig.from_json(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("field, value", [
    ("epochs", 99999999999999999999), ("epochs", MAX_EPOCHS + 1), ("epochs", 0),
    ("batch_size", MAX_BATCH_SIZE + 1), ("limit", MAX_LIMIT + 1), ("limit", 0), ("seed", -1), ("patience", 0),
    ("near_threshold", 65), ("learning_rate", float("inf")), ("learning_rate", float("nan")),
])
def test_out_of_bounds_values_are_refused_at_construction(field, value):
    with pytest.raises(ValueError, match=field.replace("_", "[_ ]")):
        TrainConfig(**{field: value})


def test_bounds_themselves_are_accepted():
    config = TrainConfig(epochs=MAX_EPOCHS, batch_size=MAX_BATCH_SIZE, limit=MAX_LIMIT)
    assert config.epochs == MAX_EPOCHS


def test_epoch_line_round_trips_through_the_log_parser():
    progress = EpochProgress(3, 10, 1.25, 0.5, 1.5, 0.4, 12.3)
    other = EpochProgress(4, 10, float("nan"), 0.51, 1.4e-5, 0.45, 0.0)
    log = f"noise\n{format_epoch_line(progress)}\nepoch 1/2: garbage\n{format_epoch_line(other)}\n"
    first, second = parse_epoch_lines(log)
    assert first == progress
    assert (second.epoch, second.accuracy, second.val_loss) == (4, 0.51, 0.0)  # printed with 4 decimals


def test_every_config_checks_the_near_settings_the_same_way():
    """The near-duplicate limits live once (duplicates/limits.py): the audit, training and mislabel configs
    refuse the same values with the same words."""
    from fer_core.detectors import AuditConfig
    from fer_core.mislabels.config import MislabelConfig

    for make in (lambda bits: TrainConfig(near_threshold=bits), lambda bits: AuditConfig(near_threshold=bits),
                 lambda bits: MislabelConfig(near_threshold=bits)):
        with pytest.raises(ValueError, match=r"near threshold 33 out of range; expected 0\.\.10 bits"):
            make(33)
    for make in (lambda mode: TrainConfig(near_mode=mode), lambda mode: AuditConfig(near_mode=mode)):
        with pytest.raises(ValueError, match="unknown near mode 'fuzzy'; expected one of verified, hash"):
            make("fuzzy")
