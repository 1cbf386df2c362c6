"""Keras 3 Functional-API models for 48×48 grayscale faces: cnn, cnn_lstm, vit, cnn_attention, xception.

The blocks of model_blocks.py feed one builder per model; each builder takes its hyperparameters as
keyword arguments (defaults = the `full` size) and returns an uncompiled `keras.Model`, whose
last Dense layer is float32 so mixed precision never reaches the softmax. Compile and fit live
in training.py. One registry (`MODELS`) holds each family's builder, its size presets (`tiny`
for tests, `fast` for a CPU, `full` for a GPU) and its named variants (the study's CNN-LSTM
variations). Augmentation (flip and shift; `standard` adds rotation and zoom) is the first
block of every model: fit runs it, evaluate and predict do not. Call a model directly with `training=False`: Keras
augmentation layers default to training=True in a bare `model(x)` call.
Keras is imported inside the functions, so importing this module (for MODEL_NAMES, to
validate a TrainConfig in the app) does not import TensorFlow.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from fer_core.labels import IMAGE_SIDE
from fer_core.training.blocks import (BATCH_NORM_MOMENTUM, DEFAULT_CLASSES, classifier_head, conv_backbone,
                                      input_block, position_embedding_class, separable_residual_block,
                                      transformer_block)

if TYPE_CHECKING:
    import keras

SIZES: tuple[str, ...] = ("tiny", "fast", "full")


# ---------------------------------------------------------------------------------------------
# Builders (defaults are the `full` size)


def build_cnn(*, filters: tuple[int, ...] = (32, 64, 128, 256), convs_per_block: int | tuple[int, ...] = 2,
              conv_dropout_rate: float = 0.25, dense_units: int = 256, dense_dropout_rate: float = 0.5,
              augmentation: str = "standard", seed: int = 0,
              num_classes: int = DEFAULT_CLASSES) -> "keras.Model":
    """VGG-style CNN: stages of 3×3 conv + batch norm, pooling and dropout, then a dense classifier."""
    import keras
    from keras import layers

    inputs, x = input_block(augmentation, seed)
    x = conv_backbone(x, filters, convs_per_block, conv_dropout_rate, seed)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, classifier_head(x, dense_units, dense_dropout_rate, seed, num_classes), name="cnn")


def build_cnn_lstm(*, filters: tuple[int, ...] = (32, 64, 128), convs_per_block: int | tuple[int, ...] = 2,
                   conv_dropout_rate: float = 0.25, lstm_units: int = 128, bidirectional: bool = True,
                   read_along: str = "rows", recurrent_layers: int = 1, dense_units: int = 128,
                   dense_dropout_rate: float = 0.5, augmentation: str = "standard", seed: int = 0,
                   num_classes: int = DEFAULT_CLASSES) -> "keras.Model":
    """CNN features read as a sequence by (bidirectional) LSTM layers: feature rows top to bottom of
    the face (`read_along="rows"`) or columns left to right (`"columns"`)."""
    import keras
    from keras import layers

    if read_along not in ("rows", "columns"):
        raise ValueError(f"cnn_lstm: read_along must be 'rows' or 'columns', got {read_along!r}")
    if recurrent_layers not in (1, 2):
        raise ValueError(f"cnn_lstm: recurrent_layers must be 1 or 2, got {recurrent_layers!r}")
    inputs, x = input_block(augmentation, seed)
    x = conv_backbone(x, filters, convs_per_block, conv_dropout_rate, seed)
    rows, columns, channels = x.shape[1:]
    if min(rows, columns) < 2:
        raise ValueError(f"cnn_lstm: {len(filters)} pooling stages leave a {rows}×{columns} feature map; "
                         "use fewer filters stages so the LSTM reads a sequence of at least 2 steps")
    if read_along == "columns":
        x = layers.Permute((2, 1, 3), name="columns_first")(x)
        rows, columns = columns, rows
    x = layers.Reshape((rows, columns * channels), name=f"{read_along}_to_sequence")(x)
    for index in range(recurrent_layers):
        last = index == recurrent_layers - 1
        suffix = "" if recurrent_layers == 1 else str(index + 1)
        lstm = layers.LSTM(lstm_units, return_sequences=not last, seed=seed + index, name=f"lstm{suffix}")
        x = layers.Bidirectional(lstm, name=f"bidirectional_lstm{suffix}")(x) if bidirectional else lstm(x)
    return keras.Model(inputs, classifier_head(x, dense_units, dense_dropout_rate, seed, num_classes), name="cnn_lstm")


def build_vit(*, patch_size: int = 6, projection_dim: int = 64, num_layers: int = 6, num_heads: int = 4,
              mlp_units: int = 128, dropout_rate: float = 0.1, head_units: int = 128,
              head_dropout_rate: float = 0.3, augmentation: str = "standard", seed: int = 0,
              num_classes: int = DEFAULT_CLASSES) -> "keras.Model":
    """Vision Transformer: patch embedding, learned position embedding, encoder blocks, pooled tokens."""
    import keras
    from keras import layers

    if patch_size < 1 or IMAGE_SIDE % patch_size:
        raise ValueError(f"vit: patch_size {patch_size} must divide the image side {IMAGE_SIDE}")
    num_patches = (IMAGE_SIDE // patch_size) ** 2
    inputs, x = input_block(augmentation, seed)
    x = layers.Conv2D(projection_dim, patch_size, strides=patch_size, name="patch_embedding")(x)
    x = layers.Reshape((num_patches, projection_dim), name="patches_to_tokens")(x)
    x = position_embedding_class()(seed=seed, name="position_embedding")(x)
    x = layers.Dropout(dropout_rate, seed=seed, name="embedding_dropout")(x)
    key_dim = max(1, projection_dim // num_heads)
    for index in range(num_layers):
        x = transformer_block(x, num_heads, key_dim, mlp_units, dropout_rate, seed + 10 * (index + 1),
                              name=f"encoder{index + 1}")
    x = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    x = layers.GlobalAveragePooling1D(name="token_pool")(x)
    return keras.Model(inputs, classifier_head(x, head_units, head_dropout_rate, seed, num_classes), name="vit")


def build_cnn_attention(*, filters: tuple[int, ...] = (32, 64, 128), convs_per_block: int = 2,
                        conv_dropout_rate: float = 0.25, num_heads: int = 8, key_dim: int = 8,
                        attention_dropout_rate: float = 0.1, dense_units: int = 128,
                        dense_dropout_rate: float = 0.5, augmentation: str = "standard", seed: int = 0,
                        num_classes: int = DEFAULT_CLASSES) -> "keras.Model":
    """CNN backbone whose feature-map positions become tokens for multi-head self-attention."""
    import keras
    from keras import layers

    inputs, x = input_block(augmentation, seed)
    x = conv_backbone(x, filters, convs_per_block, conv_dropout_rate, seed)
    rows, columns, channels = x.shape[1:]
    tokens = layers.Reshape((rows * columns, channels), name="positions_to_tokens")(x)
    attended = layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim, dropout=attention_dropout_rate,
                                         seed=seed, name="attention")(tokens, tokens)
    x = layers.Add(name="attention_residual")([tokens, attended])
    x = layers.LayerNormalization(epsilon=1e-6, name="attention_norm")(x)
    x = layers.GlobalAveragePooling1D(name="token_pool")(x)
    return keras.Model(inputs, classifier_head(x, dense_units, dense_dropout_rate, seed, num_classes), name="cnn_attention")


def build_xception(*, stem_filters: tuple[int, ...] = (32, 64), stem_stride: int = 1,
                   module_filters: tuple[int, ...] = (128, 256, 512), dense_units: int = 256, dropout_rate: float = 0.5, augmentation: str = "standard",
                   seed: int = 0, num_classes: int = DEFAULT_CLASSES) -> "keras.Model":
    """Xception-style CNN: a plain 3×3 conv stem, then residual modules of depthwise-separable convolutions
    (each halves the side), global average pooling and a dense classifier (mini-Xception family).
    `stem_stride` 2 halves the side in the first convolution: depthwise convolutions are slow on a
    CPU, and at 48×48 they cost four times what they cost at 24×24."""
    import keras
    from keras import layers

    inputs, x = input_block(augmentation, seed)
    for index, filters in enumerate(stem_filters):
        x = layers.Conv2D(filters, 3, strides=stem_stride if index == 0 else 1, padding="same", use_bias=False,
                          name=f"stem_conv{index + 1}")(x)
        x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"stem_bn{index + 1}")(x)
        x = layers.Activation("relu", name=f"stem_relu{index + 1}")(x)
    for index, filters in enumerate(module_filters):
        x = separable_residual_block(x, filters, name=f"module{index + 1}")
    x = layers.GlobalAveragePooling2D(name="feature_pool")(x)
    return keras.Model(inputs, classifier_head(x, dense_units, dropout_rate, seed, num_classes), name="xception")


# ---------------------------------------------------------------------------------------------
# Registry: one entry per family (builder, size presets, variants)


@dataclass(frozen=True)
class ModelFamily:
    """A model family: its builder (defaults = `full`), the keyword arguments of its smaller sizes,
    and its named variants (keyword arguments too; the first one is the default)."""

    builder: Callable[..., "keras.Model"]
    sizes: dict[str, dict[str, Any]]
    variants: dict[str, dict[str, Any]] = field(default_factory=lambda: {"standard": {}})


def cnn_lstm_variants() -> dict[str, dict[str, Any]]:
    """The study's CNN-LSTM variations: LSTM or bidirectional, reading rows or columns, one or two layers.

    Named `{lstm|bilstm}_{rows|columns}` plus `_2layers` for two stacked recurrent layers;
    `bilstm_rows` (one bidirectional layer over the feature rows) is the default.
    """
    variants = {}
    for bidirectional, read_along, layer_count in itertools.product((True, False), ("rows", "columns"), (1, 2)):
        name = f"{'bilstm' if bidirectional else 'lstm'}_{read_along}{'_2layers' if layer_count == 2 else ''}"
        variants[name] = {"bidirectional": bidirectional, "read_along": read_along, "recurrent_layers": layer_count}
    return variants


# `fast`: sized for a 2-core CPU (tens of millions of multiply-adds per image, light augmentation):
# one convolution at 48×48, where a layer costs four times what it costs at 24×24. Little dropout:
# in a 10-epoch run it only slowed learning (10k images, 3 epochs: val 0.33 with 0.1/0.4, 0.42 with 0/0.25).
MODELS: dict[str, ModelFamily] = {
    "cnn": ModelFamily(build_cnn, {
        # No dropout in the tiny cnn: 0.5 dropout on 16 units keeps it at chance on small learnable
        # test sets (the mislabel detector's planted-flip test needs it to learn).
        "tiny": {"filters": (8, 16), "convs_per_block": 1, "dense_units": 16, "conv_dropout_rate": 0.0,
                 "dense_dropout_rate": 0.0},
        "fast": {"filters": (32, 64, 128, 256), "convs_per_block": (1, 2, 2, 1), "conv_dropout_rate": 0.0,
                 "dense_units": 256, "dense_dropout_rate": 0.25, "augmentation": "light"},
    }),
    "cnn_lstm": ModelFamily(build_cnn_lstm, {
        "tiny": {"filters": (8, 16), "convs_per_block": 1, "lstm_units": 8, "dense_units": 16},
        "fast": {"filters": (32, 64, 128), "convs_per_block": (1, 2, 2), "conv_dropout_rate": 0.0,
                 "lstm_units": 64, "dense_units": 128, "dense_dropout_rate": 0.25, "augmentation": "light"},
    }, cnn_lstm_variants()),
    "vit": ModelFamily(build_vit, {
        "tiny": {"patch_size": 12, "projection_dim": 16, "num_layers": 1, "num_heads": 2, "mlp_units": 32,
                 "head_units": 16},
        "fast": {"patch_size": 6, "projection_dim": 64, "num_layers": 3, "num_heads": 4, "mlp_units": 128,
                 "head_units": 128, "augmentation": "light"},
    }),
    "cnn_attention": ModelFamily(build_cnn_attention, {
        "tiny": {"filters": (8, 16), "convs_per_block": 1, "dense_units": 16},
        "fast": {"filters": (32, 64, 128), "convs_per_block": (1, 2, 2), "conv_dropout_rate": 0.0,
                 "num_heads": 4, "key_dim": 16, "dense_units": 128, "dense_dropout_rate": 0.25,
                 "augmentation": "light"},
    }),
    "xception": ModelFamily(build_xception, {
        # A 16-filter stem, not 8: TensorFlow 2.21's oneDNN crashes the process (double free / segfault) in
        # the backward pass of a strided 1×1 convolution from fewer than 16 channels to 8 or 16 on an AMD
        # EPYC with AVX-512 (not on Intel with AMX): the first module's shortcut was 8 → 16.
        "tiny": {"stem_filters": (16,), "module_filters": (16, 32), "dense_units": 16},
        "fast": {"stem_filters": (32,), "stem_stride": 2, "module_filters": (64, 128, 256), "dense_units": 128,
                 "dropout_rate": 0.25, "augmentation": "light"},
    }),
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def model_family(name: str) -> ModelFamily:
    """The registry entry of a model name; ValueError naming the allowed names otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    return MODELS[name]


def model_builder(name: str) -> Callable[..., "keras.Model"]:
    """The builder function of a model name; ValueError naming the allowed names otherwise."""
    return model_family(name).builder


def model_variants(name: str) -> tuple[str, ...]:
    """The variant names of a model family, the default first."""
    return tuple(model_family(name).variants)


def default_variant(name: str) -> str:
    return model_variants(name)[0]


def validate_variant(name: str, variant: str | None) -> None:
    """ValueError naming the allowed variants when `variant` is not one of model `name`'s (None: the default)."""
    if variant is not None and variant not in model_family(name).variants:
        raise ValueError(f"unknown variant {variant!r} for model {name}; expected one of "
                         f"{', '.join(model_variants(name))}")


def size_hyperparameters(name: str, size: str) -> dict[str, Any]:
    """The keyword arguments a size preset gives the builder of `name` (empty for `full`)."""
    family = model_family(name)
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
    return dict(family.sizes.get(size, {}))


def build_model(name: str, size: str = "full", variant: str | None = None, **overrides: Any) -> "keras.Model":
    """Build model `name` at a size preset and variant (None: the default one); keyword overrides
    (e.g. seed=, augmentation=) win over both."""
    validate_variant(name, variant)
    variant_arguments = model_family(name).variants[variant or default_variant(name)]
    return model_builder(name)(**{**size_hyperparameters(name, size), **variant_arguments, **overrides})


def load_trained_model(path: str | os.PathLike) -> "keras.Model":
    """Load a `model.keras` written by training (registers the custom layers first)."""
    import keras

    position_embedding_class()
    return keras.saving.load_model(path)
