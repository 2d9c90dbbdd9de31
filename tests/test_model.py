"""The builder against published facts: parameter counts, scaled stage tables, block strings,
stochastic depth schedule and statistics, variants, endpoints, layer configs, input errors.

Expected numbers come from DESIGN.md / REFERENCE.md (the reference's TF training logs for
trainable counts, the keras-io applications table for totals, the scaled stage tables of
REFERENCE 2.2), or are worked out by hand from the rules stated there.
"""

import json

import numpy as np
import pytest

from efficientnet_tf import (
    DEFAULT_BLOCKS,
    PRESETS,
    BlockArgs,
    InputNormalization,
    MBConvBlock,
    SqueezeExcite,
    StochasticDepth,
    compound_scaling,
    create_model,
    decode_block_string,
    encode_block_string,
    feature_endpoints,
    scaled_blocks,
)
from efficientnet_tf.architecture import round_filters, round_repeats

TRAINABLE = {  # DESIGN.md, 1000 classes
    "b0": 5_288_548,
    "b1": 7_794_184,
    "b2": 9_109_994,
    "b3": 12_233_232,
    "b4": 19_341_616,
    "b5": 30_389_784,
    "b6": 43_040_704,
    "b7": 66_347_960,
    "b8": 87_413_142,
    "l2": 480_309_308,
}
KERAS_TOTAL = {  # keras-io applications table (with BN statistics and the Normalization layer)
    "b0": 5_330_571,
    "b1": 7_856_239,
    "b2": 9_177_569,
    "b3": 12_320_535,
    "b4": 19_466_823,
    "b5": 30_562_527,
    "b6": 43_265_143,
    "b7": 66_658_687,
}
# keras.applications' adapted Normalization layer holds mean (3), variance (3) and count (1);
# our InputNormalization uses constants and holds no weights.
KERAS_NORMALIZATION_WEIGHTS = 7
STEM_HEAD_BLOCKS = {  # REFERENCE.md 2.2: stem -> head channels and number of blocks
    "b0": (32, 1280, 16),
    "b1": (32, 1280, 23),
    "b2": (32, 1408, 23),
    "b3": (40, 1536, 26),
    "b4": (48, 1792, 32),
    "b5": (48, 2048, 39),
    "b6": (56, 2304, 45),
    "b7": (64, 2560, 55),
    "b8": (72, 2816, 61),
    "l2": (136, 5504, 88),
}
STAGES = {  # REFERENCE.md 2.2: per stage (repeats, in, out) after scaling
    "b7": [
        (4, 64, 32),
        (7, 32, 48),
        (7, 48, 80),
        (10, 80, 160),
        (10, 160, 224),
        (13, 224, 384),
        (4, 384, 640),
    ],
    "l2": [
        (6, 136, 72),
        (11, 72, 104),
        (11, 104, 176),
        (16, 176, 344),
        (16, 344, 480),
        (22, 480, 824),
        (6, 824, 1376),
    ],
}


def size(shape):
    return int(np.prod([int(d) for d in shape]))


@pytest.fixture
def zero_initializers(monkeypatch, keras):
    """Zeros for the convolution and dense kernels: counts do not depend on the values, and
    drawing L2's 480M random values is most of its build time."""
    from efficientnet_tf import blocks, network

    monkeypatch.setattr(blocks, "conv_kernel_initializer", keras.initializers.Zeros)
    monkeypatch.setattr(network, "dense_kernel_initializer", keras.initializers.Zeros)


@pytest.mark.parametrize("name", list(TRAINABLE))
def test_parameter_counts(keras, zero_initializers, name):
    model = create_model(name, input_shape=(32, 32, 3))  # counts do not depend on resolution
    assert sum(size(w.shape) for w in model.trainable_weights) == TRAINABLE[name]
    if name in KERAS_TOTAL:
        assert model.count_params() == KERAS_TOTAL[name] - KERAS_NORMALIZATION_WEIGHTS
    del model
    keras.backend.clear_session()


@pytest.mark.parametrize("name", list(STEM_HEAD_BLOCKS))
def test_stem_head_and_block_count(name):
    preset = PRESETS[f"efficientnet-{name}"]
    stem, head, blocks = STEM_HEAD_BLOCKS[name]
    assert round_filters(32, preset.width) == stem
    assert round_filters(1280, preset.width) == head
    assert len(scaled_blocks(DEFAULT_BLOCKS, preset.width, preset.depth)) == blocks


@pytest.mark.parametrize("name", list(STAGES))
def test_scaled_stage_table(name):
    preset = PRESETS[f"efficientnet-{name}"]
    specs = scaled_blocks(DEFAULT_BLOCKS, preset.width, preset.depth)
    stages = []
    for stage in range(7):
        members = [s for s in specs if s.stage == stage]
        stages.append((len(members), members[0].input_filters, members[0].output_filters))
        # Repeats keep the output width and stride 1.
        assert all(m.input_filters == m.output_filters and m.strides == 1 for m in members[1:])
    assert stages == STAGES[name]
    assert [
        round_repeats(decode_block_string(b).repeats, preset.depth) for b in DEFAULT_BLOCKS
    ] == [s[0] for s in STAGES[name]]


def test_rounding_rules():
    # Nearest multiple of 8, at least 8.
    assert round_filters(3, 1.0) == 8
    assert round_filters(20, 1.0) == 24  # 20 -> 24 (ties round up: int(20 + 4) // 8 * 8)
    assert round_filters(17, 1.0) == 16
    # 19 and 11.9 round down to 16 and 8, losing more than 10%: one divisor is added back.
    assert round_filters(19, 1.0) == 24
    assert round_filters(119, 0.1) == 16
    assert round_repeats(3, 1.1) == 4 and round_repeats(4, 1.0) == 4  # ceil


def test_compound_scaling():
    assert compound_scaling(0) == (1.0, 1.0, 224)
    width, depth, resolution = compound_scaling(1)
    assert (width, depth, resolution) == pytest.approx((1.1, 1.2, 258))  # 224 * 1.15 = 257.6
    width, depth, resolution = compound_scaling(2)
    assert (width, depth, resolution) == pytest.approx((1.21, 1.44, 296))  # 224 * 1.3225
    # The paper's constraint: alpha * beta^2 * gamma^2 ~ 2, so FLOPs grow ~2^phi.
    assert 1.2 * 1.1**2 * 1.15**2 == pytest.approx(2, abs=0.1)
    with pytest.raises(ValueError, match="alpha must be >= 1"):
        compound_scaling(1, alpha=0.9)


def test_create_model_scales_a_base_with_chosen_coefficients(keras):
    """Step 2 of compound scaling (DESIGN.md): depth multiplier alpha^phi, width beta^phi,
    resolution gamma^phi of the base, here with coefficients other than B0's."""
    from efficientnet_tf import architecture_of

    model = create_model(phi=2, alpha=1.3, beta=1.2, gamma=1.1, base_resolution=32, classes=10)
    record = architecture_of(model)
    assert record.depth_coefficient == pytest.approx(1.69)  # 1.3^2
    assert record.width_coefficient == pytest.approx(1.44)  # 1.2^2
    assert record.default_resolution == 39  # 32 * 1.1^2 = 38.72
    assert model.input_shape == (None, 39, 39, 3)
    # Repeats ceil(1.69 * r) for r = 1, 2, 2, 3, 3, 4, 1: 2 + 4 + 4 + 6 + 6 + 7 + 2.
    assert len([layer for layer in model.layers if isinstance(layer, MBConvBlock)]) == 31
    assert model.get_layer("stem_conv").filters == 48  # 32 * 1.44 = 46.08 -> 48
    assert model.get_layer("top_conv").filters == 1840  # 1280 * 1.44 = 1843.2 -> 1840
    # A base other than B0 (the demo's half-width, half-depth B0 at 32 px) is scaled the same
    # way (a small-images model is built at 32 px unless input_shape says otherwise).
    half = architecture_of(create_model(phi=1, alpha=1.2, beta=1.1, gamma=1.15, base_width=0.5,
                                        base_depth=0.5, base_resolution=32, small_images=True,
                                        classes=10))
    assert (half.width_coefficient, half.depth_coefficient, half.default_resolution) == (
        pytest.approx(0.55), pytest.approx(0.6), 37)  # 32 * 1.15 = 36.8
    # phi = 0 is the base itself, whatever the coefficients.
    assert compound_scaling(0, 1.4, 1.3, 1.2, 32, 0.5, 0.5) == (0.5, 0.5, 32)
    with pytest.raises(ValueError, match="base_width must be > 0"):
        compound_scaling(1, base_width=0)


def test_compound_scaling_reproduces_the_b_series_where_it_is_exact(keras):
    """DESIGN.md: B0's search gave alpha 1.2, beta 1.1, gamma 1.15. phi = 0 is B0, and phi = 1
    has exactly B2's width and depth (1.1, 1.2), so the built model is recorded as B2; B2's
    resolution 260 was rounded by hand (224 * 1.15 = 257.6 -> 258). The other presets' pairs
    are not exact powers (B3 1.2/1.4 against 1.21/1.44 at phi = 2) and are not claimed."""
    from efficientnet_tf import architecture_of

    b0 = architecture_of(create_model(phi=0, input_shape=(32, 32, 3), include_top=False))
    assert b0.preset == "efficientnet-b0" and b0.default_resolution == 224
    b2 = architecture_of(create_model(phi=1, alpha=1.2, beta=1.1, gamma=1.15,
                                      input_shape=(32, 32, 3), include_top=False))
    assert (b2.width_coefficient, b2.depth_coefficient) == (
        PRESETS["efficientnet-b2"].width, PRESETS["efficientnet-b2"].depth)
    assert b2.preset == "efficientnet-b2" and b2.default_resolution == 258


def test_block_strings():
    expected = BlockArgs(2, 3, 2, 6, 16, 24, 0.25, True)
    assert decode_block_string("r2_k3_s22_e6_i16_o24_se0.25") == expected
    for text in (*DEFAULT_BLOCKS, "r1_k5_s11_e1_i8_o8_noskip"):
        assert encode_block_string(decode_block_string(text)) == text
    assert decode_block_string("r1_k5_s11_e1_i8_o8_noskip").id_skip is False
    with pytest.raises(ValueError, match="Bad token 'x9'"):
        decode_block_string("r2_k3_s22_e6_i16_o24_x9")
    with pytest.raises(ValueError, match=r"lacks fields \['i', 'o'\]"):
        decode_block_string("r2_k3_s22_e6")
    with pytest.raises(ValueError, match="square strides"):
        decode_block_string("r2_k3_s12_e6_i16_o24")


def test_stochastic_depth_schedule(keras):
    model = create_model("b0", input_shape=(32, 32, 3), include_top=False)
    blocks = [layer for layer in model.layers if isinstance(layer, MBConvBlock)]
    rates = [block.stochastic_depth_rate for block in blocks]
    assert len(rates) == 16
    assert rates[0] == 0.0
    assert rates[-1] == pytest.approx(0.2 * 15 / 16)  # 0.1875
    np.testing.assert_allclose(rates, [0.2 * i / 16 for i in range(16)])


def test_stochastic_depth_statistics():
    rate, n = 0.25, 4000
    layer = StochasticDepth(rate, seed=3)
    x = np.ones((n, 2, 2, 3), "float32")
    y = np.asarray(layer(x, training=True))
    per_sample = y.reshape(n, -1)
    assert np.all(per_sample == per_sample[:, :1])  # the whole sample is kept or dropped
    assert set(np.unique(per_sample)) <= {0.0, np.float32(1 / (1 - rate))}
    kept = np.mean(per_sample[:, 0] > 0)
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept - (1 - rate)) < 4 * sigma
    assert abs(per_sample.mean() - 1.0) < 4 * sigma / (1 - rate)  # unbiased in expectation
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_small_images_variant():
    model = create_model("b0", small_images=True, include_top=False, input_shape=(32, 32, 3))
    assert model.output_shape == (None, 4, 4, 1280)
    default = create_model("b0", small_images=True, classes=10)
    assert default.input_shape == (None, 32, 32, 3)


def test_feature_endpoints_strides():
    model = create_model("b0", include_top=False, input_shape=(64, 64, 3))
    endpoints = feature_endpoints(model)
    shapes = {name: tuple(t.shape[1:3]) for name, t in endpoints.output.items()}
    assert shapes == {f"reduction_{k}": (64 // 2**k, 64 // 2**k) for k in range(1, 6)}
    outputs = endpoints(np.zeros((1, 64, 64, 3), "float32"))
    assert outputs["reduction_5"].shape == (1, 2, 2, 1280)


@pytest.mark.parametrize(
    "layer,shape",
    [
        (InputNormalization((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)), (2, 8, 8, 3)),
        (StochasticDepth(0.3, seed=2), (2, 8, 8, 4)),
        (SqueezeExcite(4, 16), (2, 8, 8, 16)),
        (
            MBConvBlock(16, 24, kernel_size=5, strides=2, expand_ratio=6,
                        stochastic_depth_rate=0.1),
            (2, 9, 9, 16),
        ),
        (
            MBConvBlock(24, 24, kernel_size=3, expand_ratio=1, se_ratio=None,
                        stochastic_depth_rate=0.1),
            (2, 8, 8, 24),
        ),
    ],
    ids=["normalization", "stochastic-depth", "se", "mbconv", "mbconv-skip"],
)
def test_layer_config_round_trip(layer, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    expected = np.asarray(layer(x, training=False))
    clone = type(layer).from_config(layer.get_config())
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        layer.get_config(), sort_keys=True
    )
    clone.build(shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x, training=False)), expected)


def test_builder_errors():
    with pytest.raises(ValueError, match="Valid names: efficientnet-b0, .*efficientnet-l2"):
        create_model("b9")
    with pytest.raises(ValueError, match="either a variant name or phi"):
        create_model("b0", phi=1.0)
    with pytest.raises(ValueError, match="minimum of 32 pixels"):
        create_model("b0", input_shape=(31, 64, 3))
    with pytest.raises(ValueError, match="3-channel RGB"):
        create_model("b0", input_shape=(64, 64, 1))
