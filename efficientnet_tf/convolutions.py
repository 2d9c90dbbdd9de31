"""Pointwise and depthwise convolutions with cheaper TensorFlow computations where they apply.

Same weights, config and function as `keras.layers.Conv2D` / `keras.layers.DepthwiseConv2D`;
only the ops differ, and only while `fast_paths.active()` (TensorFlow backend):

* `PointwiseConv2D` (1x1 kernel, stride 1) is one matrix product over all pixels,
  (N*H*W, C) x (C, C'). On a 2-core CPU its forward + backward costs 1.2-1.4x less than
  TensorFlow's 1x1 convolution on most of EfficientNet-B0's maps and 2.8-3.5x less on 1x1 maps
  (the squeeze-excite convolutions, and the last stages at small input sizes); at 7x7
  (320->1280) it is even, at 112x112 (16->96) 6% slower.
* `SmallMapDepthwiseConv2D` on an input of at most 4 pixels (2x2, 1x1: EfficientNet's last
  stages at 32x32 input) multiplies each channel's pixels by a small dense matrix built from the
  kernel: out[n, p, c] = sum_q x[n, q, c] * w[tap(p, q), c], where tap(p, q) is the kernel tap
  that links output pixel p to input pixel q under the layer's strides and padding (TF 'SAME'
  or 'valid'), or none. TensorFlow's depthwise kernels handle these maps poorly: forward +
  backward 2-4x slower at 2x2 with a 5x5 kernel, 5-8x at 1x1, 1.5x at 2x2 with a 3x3 kernel;
  at 4x4 the native kernel is about 4x faster, so it stays from there up.

Measured with `benchmarks/fast_paths.py` (figures in BUILD.md, "Model throughput").
"""

from __future__ import annotations

import numpy as np
from keras import layers, ops, saving

from efficientnet_tf.fast_paths import active as fast_paths_active

PACKAGE = "efficientnet_tf"
MAX_MIXING_PIXELS = 4  # input height * width up to which depthwise runs as a mixing product


@saving.register_keras_serializable(package=PACKAGE)
class PointwiseConv2D(layers.Conv2D):
    """A 1x1, stride-1 `keras.layers.Conv2D` that runs as a matrix product on TensorFlow."""

    def __init__(self, filters: int, kernel_size=1, strides=1, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, **kwargs)
        if self.kernel_size != (1, 1) or self.strides != (1, 1):
            raise ValueError(
                f"PointwiseConv2D {self.name!r} needs kernel_size 1 and strides 1, got "
                f"{self.kernel_size} and {self.strides}; use keras.layers.Conv2D for others."
            )

    def convolution_op(self, inputs, kernel):
        if fast_paths_active() and self.data_format == "channels_last" and self.groups == 1:
            return ops.tensordot(inputs, ops.reshape(kernel, kernel.shape[2:]), axes=1)
        return super().convolution_op(inputs, kernel)


@saving.register_keras_serializable(package=PACKAGE)
class SmallMapDepthwiseConv2D(layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` that, on TensorFlow, computes inputs of at most 4 pixels
    as a per-channel mixing product (see the module docstring)."""

    def call(self, inputs):
        taps = self._mixing_taps(inputs.shape)
        if taps is None:
            return super().call(inputs)
        outputs = _mix_pixels(inputs, self.kernel, taps)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def _mixing_taps(self, shape) -> np.ndarray | None:
        """(out_h, out_w, in_h * in_w) kernel-tap indices (-1: no tap), or None when the
        native kernel applies."""
        height, width = shape[1], shape[2]
        if not (
            fast_paths_active()
            and self.data_format == "channels_last"
            and self.depth_multiplier == 1
            and self.dilation_rate == (1, 1)
            and height is not None
            and width is not None
            and height * width <= MAX_MIXING_PIXELS
        ):
            return None
        rows = _tap_offsets(height, self.kernel_size[0], self.strides[0], self.padding)
        cols = _tap_offsets(width, self.kernel_size[1], self.strides[1], self.padding)
        if rows is None or cols is None:
            return None
        return _combine_taps(rows, cols, self.kernel_size[1])


def _tap_offsets(size: int, kernel: int, stride: int, padding: str) -> np.ndarray | None:
    """(outputs, inputs) kernel offset linking each output to each input along one axis, -1
    where none does; padding follows TensorFlow ('same': the extra pixel goes after)."""
    if padding == "same":
        outputs = -(-size // stride)
        before = max((outputs - 1) * stride + kernel - size, 0) // 2
    else:
        outputs, before = (size - kernel) // stride + 1, 0
    if outputs < 1:
        return None
    offsets = np.arange(size)[None, :] - (np.arange(outputs)[:, None] * stride - before)
    return np.where((offsets >= 0) & (offsets < kernel), offsets, -1)


def _combine_taps(rows: np.ndarray, cols: np.ndarray, kernel_width: int) -> np.ndarray:
    """Combines per-axis offsets into (out_h, out_w, in_h * in_w) flat tap indices, -1: none."""
    valid = (rows[:, None, :, None] >= 0) & (cols[None, :, None, :] >= 0)
    taps = rows[:, None, :, None] * kernel_width + cols[None, :, None, :]
    taps = np.where(valid, taps, -1)
    return taps.reshape(rows.shape[0], cols.shape[0], -1)


def _mix_pixels(inputs, kernel, taps: np.ndarray):
    """out[n, p, c] = sum_q inputs[n, q, c] * kernel[taps[p, q], c] (0 where taps is -1)."""
    out_h, out_w, pixels = taps.shape
    kernel_taps, channels = kernel.shape[0] * kernel.shape[1], kernel.shape[2]
    one_hot = (taps.reshape(-1, pixels)[..., None] == np.arange(kernel_taps)).astype("float32")
    mixing = ops.tensordot(
        ops.convert_to_tensor(one_hot, dtype=kernel.dtype),
        ops.reshape(kernel, (kernel_taps, channels)),
        axes=1,
    )  # (out pixels, in pixels, channels)
    pixels_last = ops.reshape(inputs, (-1, 1, pixels, channels))
    outputs = ops.sum(pixels_last * mixing, axis=2)
    return ops.reshape(outputs, (-1, out_h, out_w, channels))
