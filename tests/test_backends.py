"""The model code is backend-neutral Keras 3: the same weights give the same outputs on the JAX
backend as on TensorFlow (padding, batch norm, squeeze-excite), at an odd input size."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUN_ON_JAX = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    from efficientnet_tf import create_model
    weights, inputs, out = sys.argv[1:4]
    # load_weights replaces every initial value: draw them with NumPy, not jax.random, which
    # compiles an XLA program per weight shape (over a minute on 2 cores).
    keras.initializers.VarianceScaling.__call__ = (
        lambda self, shape, dtype=None: np.zeros(shape, "float32"))
    model = create_model("b0", width_coefficient=0.25, depth_coefficient=0.25, classes=10,
                         input_shape=(37, 37, 3), classifier_activation=None)
    model.load_weights(weights)
    x = np.load(inputs)
    # One compiled program per mode instead of one per op (eager JAX compiles each op).
    import jax
    def forward(training):
        return jax.jit(lambda trainable, other, x: model.stateless_call(
            trainable, other, x, training=training)[0])
    variables = ([v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables])
    np.save(out, np.asarray(forward(False)(*variables, x)))
    trained = np.asarray(forward(True)(*variables, x))  # drop-connect, batch statistics
    finite = bool(np.isfinite(trained).all())
    print(json.dumps({"backend": keras.backend.backend(), "finite": finite}))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_backend_matches_tensorflow(tmp_path, keras):
    from efficientnet_tf import create_model

    keras.utils.set_random_seed(3)
    model = create_model("b0", width_coefficient=0.25, depth_coefficient=0.25, classes=10,
                         input_shape=(37, 37, 3), classifier_activation=None)
    rng = np.random.default_rng(0)
    for weight in model.non_trainable_weights:  # non-trivial batch-norm statistics
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    x = rng.uniform(0, 255, (2, 37, 37, 3)).astype("float32")
    expected = np.asarray(model(x, training=False))
    model.save_weights(tmp_path / "w.weights.h5")
    np.save(tmp_path / "x.npy", x)

    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", RUN_ON_JAX, str(tmp_path / "w.weights.h5"),
         str(tmp_path / "x.npy"), str(tmp_path / "jax.npy")],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"backend": "jax", "finite": True}
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), expected, rtol=1e-4, atol=1e-4)
