"""The building blocks of the models (models.py): input and augmentation, VGG stages, Xception
modules, transformer encoder blocks, the classifier head, and the learned position embedding.

Each block takes and returns Keras tensors of the Functional API. Keras is imported inside the
functions, so importing this module does not import TensorFlow.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from fer_core.labels import EMOTIONS, IMAGE_SIDE

if TYPE_CHECKING:
    import keras

AUGMENTATIONS: tuple[str, ...] = ("none", "light", "standard")
INPUT_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)
# Keras's 0.99 needs ~500 steps to forget the start (variance 1; a first conv's real one is ~0.003):
# a CPU run's first 2–3 epochs then evaluated one emotion for every face. 0.9 settles in ~50 steps.
BATCH_NORM_MOMENTUM = 0.9
DEFAULT_CLASSES = len(EMOTIONS)  # FER-2013's seven; a dataset with its own label set passes num_classes


def input_block(augmentation: str, seed: int) -> tuple["keras.KerasTensor", "keras.KerasTensor"]:
    """The model input (raw pixels 0..255, 48×48×1) and its augmented, rescaled view."""
    import keras
    from keras import layers

    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augmentation!r}; expected one of {', '.join(AUGMENTATIONS)}")
    inputs = keras.Input(shape=INPUT_SHAPE, name="pixels")
    x = inputs if augmentation == "none" else augmentation_block(inputs, seed, heavy=augmentation == "standard")
    return inputs, layers.Rescaling(1.0 / 255, name="rescale")(x)


def augmentation_block(x: "keras.KerasTensor", seed: int, heavy: bool = True, shift_factor: float = 0.1,
                       rotation_factor: float = 0.04, zoom_factor: float = 0.1) -> "keras.KerasTensor":
    """Random horizontal flip and small shift, plus (heavy) rotation (fraction of a full turn) and zoom; training only.

    Kept in float32 so that mixed precision does not round the interpolated pixels. Rotation and
    zoom each cost about as much CPU as a small network's step, so the `fast` sizes leave them out.
    """
    from keras import layers

    x = layers.RandomFlip("horizontal", seed=seed, dtype="float32", name="random_flip")(x)
    x = layers.RandomTranslation(shift_factor, shift_factor, fill_mode="nearest", seed=seed + 1,
                                 dtype="float32", name="random_shift")(x)
    if not heavy:
        return x
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
        x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn{index + 1}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{index + 1}")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return layers.Dropout(dropout_rate, seed=seed, name=f"{name}_dropout")(x)


def conv_backbone(x: "keras.KerasTensor", filters: tuple[int, ...], convs_per_block: int | tuple[int, ...],
                  dropout_rate: float, seed: int) -> "keras.KerasTensor":
    """Stacked VGG stages; each halves the side (48 → 24 → 12 → 6 → 3).

    `convs_per_block` is one count for every stage or one per stage: the `fast` sizes give the
    first stage (48×48, the costliest pixels) a single convolution and the middle stages two.
    """
    counts = (convs_per_block,) * len(filters) if isinstance(convs_per_block, int) else tuple(convs_per_block)
    if len(counts) != len(filters):
        raise ValueError(f"convs_per_block {convs_per_block!r} must be one count or one per stage of {filters!r}")
    for stage, (stage_filters, convs) in enumerate(zip(filters, counts)):
        x = conv_block(x, stage_filters, convs, dropout_rate, seed + stage, name=f"block{stage + 1}")
    return x


def separable_residual_block(x: "keras.KerasTensor", filters: int, name: str) -> "keras.KerasTensor":
    """Xception module: 2 × (depthwise-separable 3×3 conv, batch norm), 3×3/2 max pooling,
    plus a strided 1×1 convolution of the input as the residual (ReLU between the two convs)."""
    from keras import layers

    residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name=f"{name}_shortcut")(x)
    residual = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_shortcut_bn")(residual)
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sepconv1")(x)
    x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn1")(x)
    x = layers.Activation("relu", name=f"{name}_relu1")(x)
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sepconv2")(x)
    x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn2")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    x = layers.Add(name=f"{name}_add")([x, residual])
    return layers.Activation("relu", name=f"{name}_out")(x)


def classifier_head(x: "keras.KerasTensor", dense_units: int, dropout_rate: float,
                    seed: int, num_classes: int = DEFAULT_CLASSES) -> "keras.KerasTensor":
    """Dense + ReLU, dropout, then a float32 softmax over the emotions (the dataset's label set)."""
    from keras import layers

    x = layers.Dense(dense_units, activation="relu", name="head_dense")(x)
    x = layers.Dropout(dropout_rate, seed=seed, name="head_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="emotion")(x)


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
