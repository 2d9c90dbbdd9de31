"""Multiply-add counts of an EfficientNet, derived from the same block table the builder uses."""

from __future__ import annotations

import math
from collections.abc import Sequence

from efficientnet_tf.architecture import (
    DEFAULT_BLOCKS,
    HEAD_FILTERS,
    STEM_FILTERS,
    BlockArgs,
    round_filters,
    scaled_blocks,
)


def _same_output(size: int, stride: int) -> int:
    """Output size of a TF 'SAME' convolution."""
    return math.ceil(size / stride)


def count_macs(
    width_coefficient: float,
    depth_coefficient: float,
    resolution: int | tuple[int, int],
    classes: int = 1000,
    blocks: Sequence[str | BlockArgs] = DEFAULT_BLOCKS,
    small_images: bool = False,
    include_top: bool = True,
    depth_divisor: int = 8,
) -> int:
    """Multiply-accumulate operations of one forward pass on one image.

    Counts convolutions (stem, expand, depthwise, squeeze-excite, project, head) and the
    classifier; batch norm, activations, pooling and additions are not counted (the usual
    convention of the EfficientNet paper's FLOPs column, which counts multiply-adds).
    """
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    stem = round_filters(STEM_FILTERS, width_coefficient, depth_divisor)
    height, width = _same_output(height, 2), _same_output(width, 2)
    macs = height * width * 3 * 3 * 3 * stem
    specs = scaled_blocks(
        blocks, width_coefficient, depth_coefficient, 0.0, small_images, depth_divisor
    )
    for spec in specs:
        expanded = spec.input_filters * spec.expand_ratio
        if spec.expand_ratio != 1:
            macs += height * width * spec.input_filters * expanded
        height, width = _same_output(height, spec.strides), _same_output(width, spec.strides)
        macs += height * width * spec.kernel_size**2 * expanded
        if spec.se_ratio and 0 < spec.se_ratio <= 1:
            reduced = max(1, int(spec.input_filters * spec.se_ratio))
            macs += 2 * expanded * reduced
        macs += height * width * expanded * spec.output_filters
    head = round_filters(HEAD_FILTERS, width_coefficient, depth_divisor)
    macs += height * width * specs[-1].output_filters * head
    if include_top:
        macs += head * classes
    return macs
