"""Models: every builder at `tiny` builds, outputs 7 float32 probabilities, fits a step, saves and loads."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer_core.training.models import MODEL_NAMES, build_model, load_trained_model, model_variants, size_hyperparameters  # noqa: E402


def random_batch(count: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(count, 48, 48, 1)).astype(np.float32),
            rng.integers(0, 7, size=count).astype(np.int32))


def layers_of_type(model: "keras.Model", layer_type: type) -> list:
    return [layer for layer in model._flatten_layers() if isinstance(layer, layer_type)]


@pytest.mark.parametrize("name, variant", [(name, None) for name in MODEL_NAMES]
                         + [("cnn_lstm", variant) for variant in model_variants("cnn_lstm")[1:]])
def test_tiny_model_builds_outputs_seven_probabilities_and_fits_one_step(name, variant):
    keras.utils.set_random_seed(0)
    model = build_model(name, "tiny", variant, seed=0)
    images, labels = random_batch()
    assert model.output_shape == (None, 7)
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    # Eager: one step needs no graph tracing, which would cost seconds per model.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], run_eagerly=True)
    before = [weight.copy() for weight in model.get_weights()]
    loss = model.train_on_batch(images, labels, return_dict=True)["loss"]
    assert np.isfinite(loss)
    assert any(not np.array_equal(old, new) for old, new in zip(before, model.get_weights()))


def test_cnn_lstm_reads_a_real_sequence_of_feature_rows():
    for size in ("tiny", "full"):
        model = build_model("cnn_lstm", size)
        sequence_length = model.get_layer("rows_to_sequence").output.shape[1]
        assert sequence_length > 1
        assert layers_of_type(model, keras.layers.LSTM)


def test_cnn_attention_turns_feature_map_into_tokens_for_multi_head_attention():
    model = build_model("cnn_attention", "full")
    attention = model.get_layer("attention")
    assert isinstance(attention, keras.layers.MultiHeadAttention)
    assert (attention.num_heads, attention.key_dim) == (8, 8)
    assert model.get_layer("positions_to_tokens").output.shape[1:] == (36, 128)


def test_vit_has_patch_tokens_position_embedding_and_encoder_blocks():
    model = build_model("vit", "full")
    assert model.get_layer("patches_to_tokens").output.shape[1:] == (64, 64)
    assert len(layers_of_type(model, keras.layers.MultiHeadAttention)) == 6
    assert model.get_layer("position_embedding").count_params() == 64 * 64
    with pytest.raises(ValueError, match="patch_size 5"):
        build_model("vit", "tiny", patch_size=5)


def test_augmentation_runs_in_training_only():
    model = build_model("cnn", "tiny", seed=3)
    augmented = keras.Model(model.input, model.get_layer("random_zoom").output)
    images, _ = random_batch(4)
    np.testing.assert_array_equal(np.asarray(augmented(images, training=False)), images)
    assert not np.allclose(np.asarray(augmented(images, training=True)), images)
    # predict() and training=False switch augmentation off (a bare model(x) call would not: Keras
    # augmentation layers default to training=True).
    np.testing.assert_array_equal(model.predict(images, verbose=0), model.predict(images, verbose=0))
    np.testing.assert_array_equal(np.asarray(model(images, training=False)), np.asarray(model(images, training=False)))
    assert "random_flip" not in [layer.name for layer in build_model("cnn", "tiny", augmentation="none").layers]


def test_final_layer_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("cnn_attention", "tiny")
        assert model.get_layer("block1_conv1").compute_dtype == "float16"
        assert model.get_layer("emotion").compute_dtype == "float32"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_registry_validates_names_and_lets_overrides_win():
    with pytest.raises(ValueError, match="unknown model 'resnet'; expected one of cnn, cnn_lstm, vit, cnn_attention, xception"):
        build_model("resnet", "tiny")
    with pytest.raises(ValueError, match="unknown size 'huge'; expected one of tiny, fast, full"):
        build_model("cnn", "huge")
    assert size_hyperparameters("cnn", "full") == {}
    model = build_model("cnn", "tiny", filters=(4, 8, 16))
    assert model.get_layer("block3_conv1").filters == 16


def test_saved_vit_loads_with_its_custom_layer_and_predicts_the_same(tmp_path):
    model = build_model("vit", "tiny", seed=1)
    images, _ = random_batch(3)
    model.save(tmp_path / "model.keras")
    loaded = load_trained_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(loaded(images, training=False)), np.asarray(model(images, training=False)),
                               rtol=1e-6)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fast_size_builds_smaller_than_full_with_light_augmentation(name):
    fast = build_model(name, "fast")
    assert fast.output_shape == (None, 7)
    layer_names = [layer.name for layer in fast.layers]
    assert "random_shift" in layer_names and "random_rotation" not in layer_names  # light: flip + shift only
    assert size_hyperparameters(name, "fast")


def test_cnn_lstm_variants_read_rows_or_columns_with_one_or_two_recurrent_layers():
    assert set(model_variants("cnn_lstm")) == {f"{kind}_{along}{layers}" for kind in ("lstm", "bilstm")
                                               for along in ("rows", "columns") for layers in ("", "_2layers")}
    columns = build_model("cnn_lstm", "tiny", "lstm_columns_2layers")
    assert columns.get_layer("columns_first") and columns.get_layer("columns_to_sequence")
    assert [layer.name for layer in layers_of_type(columns, keras.layers.LSTM)] == ["lstm1", "lstm2"]
    assert not layers_of_type(columns, keras.layers.Bidirectional)
    rows = build_model("cnn_lstm", "tiny")  # the default variant: one bidirectional layer over rows
    assert rows.get_layer("rows_to_sequence") and len(layers_of_type(rows, keras.layers.Bidirectional)) == 1
    with pytest.raises(ValueError, match="unknown variant 'gru' for model cnn_lstm; expected one of bilstm_rows"):
        build_model("cnn_lstm", "tiny", "gru")
    with pytest.raises(ValueError, match="unknown variant 'lstm_rows' for model cnn; expected one of standard"):
        build_model("cnn", "tiny", "lstm_rows")


def test_xception_is_residual_depthwise_separable():
    model = build_model("xception", "fast")
    assert len(layers_of_type(model, keras.layers.SeparableConv2D)) == 6  # 3 modules × 2
    assert len(layers_of_type(model, keras.layers.Add)) == 3
    assert model.get_layer("module3_add").output.shape[1:] == (3, 3, 256)  # stem stride 2: 24 → 12 → 6 → 3
