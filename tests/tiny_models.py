"""Tiny EfficientNet builders for the training tests (one block, 32x32, logits, no noise)."""

ONE_BLOCK = ("r1_k3_s11_e1_i32_o16_se0.25",)


def make_model_fn(keras, seed=0, **overrides):
    """A function building the tiny model with a fixed seed; overrides go to create_model."""
    from efficientnet_tf import create_model

    def model_fn():
        keras.utils.set_random_seed(seed)
        options = dict(
            width_coefficient=0.25,
            blocks=ONE_BLOCK,
            input_shape=(32, 32, 3),
            classes=10,
            classifier_activation=None,
            dropout_rate=0.0,
            stochastic_depth_rate=0.0,
        )
        options.update(overrides)
        return create_model("b0", **options)

    return model_fn
