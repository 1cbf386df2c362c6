"""Keras 3 Functional-API models for 48×48 grayscale faces: cnn, cnn_lstm, vit, cnn_attention.

Small block functions feed one builder per model; each builder takes its hyperparameters as
keyword arguments (defaults = the `full` size) and returns an uncompiled `keras.Model`, whose
last Dense layer is float32 so mixed precision never reaches the softmax. Compile and fit live
in training.py. Augmentation (flip, shift, rotation, zoom) is the first block of every model:
fit runs it, evaluate and predict do not. Call a model directly with `training=False`: Keras
augmentation layers default to training=True in a bare `model(x)` call.
Keras is imported inside the functions, so importing this module (for MODEL_NAMES, to
validate a TrainConfig in the app) does not import TensorFlow.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any, Callable

from .labels import EMOTIONS, IMAGE_SIDE

if TYPE_CHECKING:
    import keras

MODEL_NAMES: tuple[str, ...] = ("cnn", "cnn_lstm", "vit", "cnn_attention")
SIZES: tuple[str, ...] = ("tiny", "full")
INPUT_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)

# `full` is each builder's defaults; `tiny` shrinks the model so tests build and fit in seconds.
# The tiny cnn has no dropout: 0.5 dropout on 16 units kept it at chance on small learnable test
# sets (tests that need a model to learn, e.g. the mislabel detector's planted flips).
TINY_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "cnn": {"filters": (8, 16), "convs_per_block": 1, "dense_units": 16, "conv_dropout_rate": 0.0,
            "dense_dropout_rate": 0.0},
    "cnn_lstm": {"filters": (8, 16), "convs_per_block": 1, "lstm_units": 8, "dense_units": 16},
    "vit": {"patch_size": 12, "projection_dim": 16, "num_layers": 1, "num_heads": 2, "mlp_units": 32,
            "head_units": 16},
    "cnn_attention": {"filters": (8, 16), "convs_per_block": 1, "dense_units": 16},
}


# ---------------------------------------------------------------------------------------------
# Blocks


def input_block(augment: bool, seed: int) -> tuple["keras.KerasTensor", "keras.KerasTensor"]:
    """The model input (raw pixels 0..255, 48×48×1) and its augmented, rescaled view."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=INPUT_SHAPE, name="pixels")
    x = augmentation_block(inputs, seed) if augment else inputs
    return inputs, layers.Rescaling(1.0 / 255, name="rescale")(x)


def augmentation_block(x: "keras.KerasTensor", seed: int, shift_factor: float = 0.1,
                       rotation_factor: float = 0.04, zoom_factor: float = 0.1) -> "keras.KerasTensor":
    """Random horizontal flip, small shift, rotation (fraction of a full turn) and zoom; training only.

    Kept in float32 so that mixed precision does not round the interpolated pixels.
    """
    from keras import layers

    x = layers.RandomFlip("horizontal", seed=seed, dtype="float32", name="random_flip")(x)
    x = layers.RandomTranslation(shift_factor, shift_factor, fill_mode="nearest", seed=seed + 1,
                                 dtype="float32", name="random_shift")(x)
    x = layers.RandomRotation(rotation_factor, fill_mode="nearest", seed=seed + 2, dtype="float32",
                              name="random_rotation")(x)
    return layers.RandomZoom(zoom_factor, fill_mode="nearest", seed=seed + 3, dtype="float32",
                             name="random_zoom")(x)


def conv_block(x: "keras.KerasTensor", filters: int, convs: int, dropout_rate: float, seed: int,
               name: str) -> "keras.KerasTensor":
    """VGG stage: `convs` × (3×3 conv, batch norm, ReLU), then 2×2 max pooling and dropout."""
    from keras import layers

    for index in range(convs):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{index + 1}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{index + 1}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{index + 1}")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return layers.Dropout(dropout_rate, seed=seed, name=f"{name}_dropout")(x)


def conv_backbone(x: "keras.KerasTensor", filters: tuple[int, ...], convs_per_block: int,
                  dropout_rate: float, seed: int) -> "keras.KerasTensor":
    """Stacked VGG stages; each halves the side (48 → 24 → 12 → 6 → 3)."""
    for stage, stage_filters in enumerate(filters):
        x = conv_block(x, stage_filters, convs_per_block, dropout_rate, seed + stage, name=f"block{stage + 1}")
    return x


def classifier_head(x: "keras.KerasTensor", dense_units: int, dropout_rate: float,
                    seed: int) -> "keras.KerasTensor":
    """Dense + ReLU, dropout, then a float32 softmax over the seven emotions."""
    from keras import layers

    x = layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = layers.Dropout(dropout_rate, seed=seed, name="head_dropout")(x)
    return layers.Dense(len(EMOTIONS), activation="softmax", dtype="float32", name="emotion")(x)


def transformer_block(x: "keras.KerasTensor", num_heads: int, key_dim: int, mlp_units: int,
                      dropout_rate: float, seed: int, name: str) -> "keras.KerasTensor":
    """Pre-norm ViT encoder block: LN → multi-head self-attention → add, LN → MLP → add."""
    from keras import layers

    width = x.shape[-1]
    attended = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    attended = layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim, dropout=dropout_rate,
                                         seed=seed, name=f"{name}_attention")(attended, attended)
    x = layers.Add(name=f"{name}_add1")([x, attended])
    mlp = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    mlp = layers.Dense(mlp_units, activation="gelu", name=f"{name}_mlp1")(mlp)
    mlp = layers.Dropout(dropout_rate, seed=seed + 1, name=f"{name}_mlp_dropout")(mlp)
    mlp = layers.Dense(width, name=f"{name}_mlp2")(mlp)
    return layers.Add(name=f"{name}_add2")([x, mlp])


@functools.cache
def position_embedding_class() -> type:
    """The PositionEmbedding layer class (a learned vector per token position, added to the tokens).

    Defined on first use so that importing this module does not import TensorFlow; registered
    with Keras so that saved models load (see `load_trained_model`).
    """
    import keras

    @keras.saving.register_keras_serializable(package="fer_core")
    class PositionEmbedding(keras.layers.Layer):
        """Adds a learned embedding per position to a (batch, tokens, width) sequence."""

        def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.seed = seed

        def build(self, input_shape: tuple[int | None, ...]) -> None:
            self.embedding = self.add_weight(
                name="embedding", shape=(input_shape[1], input_shape[2]),
                initializer=keras.initializers.RandomNormal(stddev=0.02, seed=self.seed))

        def call(self, tokens: Any) -> Any:
            return tokens + keras.ops.cast(self.embedding, tokens.dtype)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "seed": self.seed}

    return PositionEmbedding


# ---------------------------------------------------------------------------------------------
# Builders (defaults are the `full` size)


def build_cnn(*, filters: tuple[int, ...] = (32, 64, 128, 256), convs_per_block: int = 2,
              conv_dropout_rate: float = 0.25, dense_units: int = 256, dense_dropout_rate: float = 0.5,
              augment: bool = True, seed: int = 0) -> "keras.Model":
    """VGG-style CNN: stages of 3×3 conv + batch norm, pooling and dropout, then a dense classifier."""
    import keras
    from keras import layers

    inputs, x = input_block(augment, seed)
    x = conv_backbone(x, filters, convs_per_block, conv_dropout_rate, seed)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, classifier_head(x, dense_units, dense_dropout_rate, seed), name="cnn")


def build_cnn_lstm(*, filters: tuple[int, ...] = (32, 64, 128), convs_per_block: int = 2,
                   conv_dropout_rate: float = 0.25, lstm_units: int = 128, bidirectional: bool = True,
                   dense_units: int = 128, dense_dropout_rate: float = 0.5, augment: bool = True,
                   seed: int = 0) -> "keras.Model":
    """CNN features read row by row (top to bottom of the face) by a (bidirectional) LSTM."""
    import keras
    from keras import layers

    inputs, x = input_block(augment, seed)
    x = conv_backbone(x, filters, convs_per_block, conv_dropout_rate, seed)
    rows, columns, channels = x.shape[1:]
    if rows < 2:
        raise ValueError(f"cnn_lstm: {len(filters)} pooling stages leave {rows} feature row(s); "
                         "use fewer filters stages so the LSTM reads a sequence of at least 2 rows")
    x = layers.Reshape((rows, columns * channels), name="rows_to_sequence")(x)
    lstm = layers.LSTM(lstm_units, seed=seed, name="lstm")
    x = layers.Bidirectional(lstm, name="bidirectional_lstm")(x) if bidirectional else lstm(x)
    return keras.Model(inputs, classifier_head(x, dense_units, dense_dropout_rate, seed), name="cnn_lstm")


def build_vit(*, patch_size: int = 6, projection_dim: int = 64, num_layers: int = 6, num_heads: int = 4,
              mlp_units: int = 128, dropout_rate: float = 0.1, head_units: int = 128,
              head_dropout_rate: float = 0.3, augment: bool = True, seed: int = 0) -> "keras.Model":
    """Vision Transformer: patch embedding, learned position embedding, encoder blocks, pooled tokens."""
    import keras
    from keras import layers

    if patch_size < 1 or IMAGE_SIDE % patch_size:
        raise ValueError(f"vit: patch_size {patch_size} must divide the image side {IMAGE_SIDE}")
    num_patches = (IMAGE_SIDE // patch_size) ** 2
    inputs, x = input_block(augment, seed)
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
    return keras.Model(inputs, classifier_head(x, head_units, head_dropout_rate, seed), name="vit")


def build_cnn_attention(*, filters: tuple[int, ...] = (32, 64, 128), convs_per_block: int = 2,
                        conv_dropout_rate: float = 0.25, num_heads: int = 8, key_dim: int = 8,
                        attention_dropout_rate: float = 0.1, dense_units: int = 128,
                        dense_dropout_rate: float = 0.5, augment: bool = True, seed: int = 0) -> "keras.Model":
    """CNN backbone whose feature-map positions become tokens for multi-head self-attention."""
    import keras
    from keras import layers

    inputs, x = input_block(augment, seed)
    x = conv_backbone(x, filters, convs_per_block, conv_dropout_rate, seed)
    rows, columns, channels = x.shape[1:]
    tokens = layers.Reshape((rows * columns, channels), name="positions_to_tokens")(x)
    attended = layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim, dropout=attention_dropout_rate,
                                         seed=seed, name="attention")(tokens, tokens)
    x = layers.Add(name="attention_residual")([tokens, attended])
    x = layers.LayerNormalization(epsilon=1e-6, name="attention_norm")(x)
    x = layers.GlobalAveragePooling1D(name="token_pool")(x)
    return keras.Model(inputs, classifier_head(x, dense_units, dense_dropout_rate, seed), name="cnn_attention")


# ---------------------------------------------------------------------------------------------
# Registry


def model_builder(name: str) -> Callable[..., "keras.Model"]:
    """The builder function of a model name; ValueError naming the allowed names otherwise."""
    builders = {"cnn": build_cnn, "cnn_lstm": build_cnn_lstm, "vit": build_vit,
                "cnn_attention": build_cnn_attention}
    if name not in builders:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    return builders[name]


def size_hyperparameters(name: str, size: str) -> dict[str, Any]:
    """The keyword arguments a size preset gives the builder of `name` (empty for `full`)."""
    model_builder(name)
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
    return dict(TINY_HYPERPARAMETERS[name]) if size == "tiny" else {}


def build_model(name: str, size: str = "full", **overrides: Any) -> "keras.Model":
    """Build model `name` at a size preset; keyword overrides (e.g. seed=, augment=) win over the preset."""
    return model_builder(name)(**{**size_hyperparameters(name, size), **overrides})


def load_trained_model(path: str | os.PathLike) -> "keras.Model":
    """Load a `model.keras` written by training (registers the custom layers first)."""
    import keras

    position_embedding_class()
    return keras.saving.load_model(path)
