"""RMSProp with the TF1 semantics the EfficientNet recipe was tuned with.

TF1 `tf.train.RMSPropOptimizer` differs from Keras 3 `RMSprop` in the mean-square slot's start
value (ones, not zeros). Epsilon inside the square root and the learning rate inside the
momentum accumulator are the same in both, but this class writes the update out in full so it
does not depend on Keras internals:

    ms  <- rho * ms + (1 - rho) * g^2            (ms starts at 1)
    mom <- momentum * mom + lr * g / sqrt(ms + epsilon)
    w   <- w - mom
"""

from __future__ import annotations

import keras
from keras import ops

from noisy_student.config import OPTIMIZERS


@keras.saving.register_keras_serializable(package="noisy_student")
class TF1RMSprop(keras.optimizers.Optimizer):
    """RMSProp as in TF1 (`decay`=rho 0.9, momentum 0.9, epsilon 1e-3 by default)."""

    def __init__(
        self,
        learning_rate=0.016,
        rho: float = 0.9,
        momentum: float = 0.9,
        epsilon: float = 1e-3,
        name: str = "tf1_rmsprop",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho}.")
        if momentum < 0.0:
            raise ValueError(f"momentum must be >= 0, got {momentum}.")
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._mean_squares = self.add_optimizer_variables(var_list, "rms", initializer="ones")
        self._momenta = self.add_optimizer_variables(var_list, "momentum", initializer="zeros")

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        mean_square = self._mean_squares[index]
        self.assign(
            mean_square,
            ops.add(ops.multiply(self.rho, mean_square), (1.0 - self.rho) * ops.square(gradient)),
        )
        step = ops.divide(ops.multiply(lr, gradient), ops.sqrt(mean_square + self.epsilon))
        momentum = self._momenta[index]
        self.assign(momentum, ops.add(ops.multiply(self.momentum, momentum), step))
        self.assign_sub(variable, momentum)

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }


def make_optimizer(
    name: str,
    learning_rate,
    *,
    rmsprop_decay: float = 0.9,
    momentum: float = 0.9,
    epsilon: float = 1e-3,
    weight_decay: float = 0.0,
    no_decay_variables=(),
) -> keras.optimizers.Optimizer:
    """The training optimizer by name:

    * 'rmsprop': the reference's TF1 RMSProp (decay, momentum, epsilon as given);
    * 'momentum': SGD with Nesterov momentum;
    * 'adamw': Keras AdamW with decoupled weight decay `weight_decay` (x learning rate), not
      applied to `no_decay_variables` (batch norm). The other two get weight decay as an L2
      term in the loss instead (see `uses_loss_weight_decay`).
    """
    if name == "rmsprop":
        return TF1RMSprop(learning_rate, rho=rmsprop_decay, momentum=momentum, epsilon=epsilon)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True)
    if name == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
        optimizer.exclude_from_weight_decay(var_list=list(no_decay_variables))
        return optimizer
    raise ValueError(f"Unknown optimizer {name!r}; use one of {OPTIMIZERS}.")


def uses_loss_weight_decay(name: str) -> bool:
    """True when weight decay is an L2 term of the loss (the reference); AdamW decays itself."""
    return name != "adamw"
