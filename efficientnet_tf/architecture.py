"""What an EfficientNet is, without Keras: presets, compound scaling, the block table, and the
record a built model carries of the variant it is.

Everything here is plain Python (no Keras, no TensorFlow), shared by the model builder
(`network`), the MAC counter (`complexity`) and the weight mapping (`weights`). All numbers are
the reference's (EfficientNet paper, tensorflow/tpu `efficientnet_builder.py`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

# --------------------------------------------------------------------------------------------
# Presets and compound scaling


class Preset(NamedTuple):
    """Scaling coefficients of one published variant."""

    width: float
    depth: float
    resolution: int
    dropout: float


PRESETS: dict[str, Preset] = {
    "efficientnet-b0": Preset(1.0, 1.0, 224, 0.2),
    "efficientnet-b1": Preset(1.0, 1.1, 240, 0.2),
    "efficientnet-b2": Preset(1.1, 1.2, 260, 0.3),
    "efficientnet-b3": Preset(1.2, 1.4, 300, 0.3),
    "efficientnet-b4": Preset(1.4, 1.8, 380, 0.4),
    "efficientnet-b5": Preset(1.6, 2.2, 456, 0.4),
    "efficientnet-b6": Preset(1.8, 2.6, 528, 0.5),
    "efficientnet-b7": Preset(2.0, 3.1, 600, 0.5),
    "efficientnet-b8": Preset(2.2, 3.6, 672, 0.5),
    "efficientnet-l2": Preset(4.3, 5.3, 800, 0.5),
}

# Coefficients found by the grid search on B0 (EfficientNet paper, section 3.3).
DEFAULT_ALPHA = 1.2  # depth
DEFAULT_BETA = 1.1  # width
DEFAULT_GAMMA = 1.15  # resolution
DEFAULT_DEPTH_DIVISOR = 8


def canonical_name(name: str) -> str:
    """Maps 'b3', 'B3', 'efficientnetb3' or 'efficientnet-b3' to 'efficientnet-b3'.

    Raises:
        ValueError: the name is not a preset; the message lists the valid names.
    """
    key = name.strip().lower().replace("_", "-")
    if key.startswith("efficientnet"):
        key = key[len("efficientnet") :].lstrip("-")
    full = f"efficientnet-{key}"
    if full not in PRESETS:
        valid = ", ".join(PRESETS) + " (or the short forms b0..b8, l2)"
        raise ValueError(f"Unknown EfficientNet variant {name!r}. Valid names: {valid}.")
    return full


def compound_scaling(
    phi: float,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    gamma: float = DEFAULT_GAMMA,
    base_resolution: int = 224,
    base_width: float = 1.0,
    base_depth: float = 1.0,
) -> tuple[float, float, int]:
    """Returns (width, depth, resolution) for compound coefficient `phi`.

    depth = base_depth * alpha**phi, width = base_width * beta**phi, resolution =
    base_resolution * gamma**phi (rounded to the nearest integer). The base is B0 (width and
    depth 1) unless `base_width` / `base_depth` say otherwise, e.g. the half-width, half-depth
    B0 of the demo. The paper constrains alpha * beta**2 * gamma**2 ~ 2, so FLOPs grow by
    about 2**phi.
    """
    for label, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if value < 1.0:
            raise ValueError(f"{label} must be >= 1 (got {value}); scaling only grows the model.")
    for label, value in (("base_width", base_width), ("base_depth", base_depth),
                         ("base_resolution", base_resolution)):
        if value <= 0:
            raise ValueError(f"{label} must be > 0 (got {value}).")
    width = base_width * beta**phi
    depth = base_depth * alpha**phi
    resolution = int(round(base_resolution * gamma**phi))
    return width, depth, resolution


def round_filters(filters: int, width: float, divisor: int = DEFAULT_DEPTH_DIVISOR) -> int:
    """Scales a channel count by `width`, to the nearest multiple of `divisor` (at least
    `divisor`), adding one `divisor` when rounding down lost more than 10%."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scales the number of blocks of a stage by `depth`, rounding up."""
    return int(math.ceil(depth * repeats))


# --------------------------------------------------------------------------------------------
# The block table


@dataclasses.dataclass(frozen=True)
class BlockArgs:
    """One stage of the block table, as in the reference's block strings."""

    repeats: int
    kernel_size: int
    strides: int
    expand_ratio: int
    input_filters: int
    output_filters: int
    se_ratio: float | None = None
    id_skip: bool = True


DEFAULT_BLOCKS: tuple[str, ...] = (
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
SMALL_IMAGE_STAGES = (1, 2)  # stages that use stride 1 in the 32x32 variant

_TOKEN = re.compile(r"^(noskip|se[0-9.]+|[rkseio][0-9]+)$")


def decode_block_string(block_string: str) -> BlockArgs:
    """Parses a reference block string such as 'r2_k3_s22_e6_i16_o24_se0.25'."""
    fields: dict[str, str] = {}
    id_skip = True
    for token in block_string.split("_"):
        if not _TOKEN.match(token):
            raise ValueError(
                f"Bad token {token!r} in block string {block_string!r}; expected tokens like "
                "r2, k3, s22, e6, i16, o24, se0.25, noskip."
            )
        if token == "noskip":
            id_skip = False
        elif token.startswith("se"):
            fields["se"] = token[2:]
        else:
            fields[token[0]] = token[1:]
    missing = [key for key in "rkseio" if key not in fields]
    if missing:
        raise ValueError(f"Block string {block_string!r} lacks fields {missing}.")
    stride = fields["s"]
    if len(stride) not in (1, 2) or (len(stride) == 2 and stride[0] != stride[1]):
        raise ValueError(f"Block string {block_string!r}: only square strides are supported.")
    return BlockArgs(
        repeats=int(fields["r"]),
        kernel_size=int(fields["k"]),
        strides=int(stride[0]),
        expand_ratio=int(fields["e"]),
        input_filters=int(fields["i"]),
        output_filters=int(fields["o"]),
        se_ratio=float(fields["se"]) if "se" in fields else None,
        id_skip=id_skip,
    )


def encode_block_string(args: BlockArgs) -> str:
    """Inverse of `decode_block_string`."""
    parts = [
        f"r{args.repeats}",
        f"k{args.kernel_size}",
        f"s{args.strides}{args.strides}",
        f"e{args.expand_ratio}",
        f"i{args.input_filters}",
        f"o{args.output_filters}",
    ]
    if args.se_ratio:
        parts.append(f"se{args.se_ratio:g}")
    if not args.id_skip:
        parts.append("noskip")
    return "_".join(parts)


def block_strings(blocks: Sequence[str | BlockArgs]) -> tuple[str, ...]:
    """The stage table as canonical block strings (BlockArgs encoded, strings re-encoded)."""
    return tuple(
        encode_block_string(b if isinstance(b, BlockArgs) else decode_block_string(b))
        for b in blocks
    )


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One concrete MBConv block after scaling: what the builder instantiates."""

    name: str
    stage: int
    kernel_size: int
    strides: int
    expand_ratio: int
    input_filters: int
    output_filters: int
    se_ratio: float | None
    id_skip: bool
    stochastic_depth_rate: float

    def layer_arguments(self) -> dict[str, Any]:
        """The block's `MBConvBlock` arguments (every field but the stage index)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "stage"}


def scaled_blocks(
    blocks: Sequence[str | BlockArgs] = DEFAULT_BLOCKS,
    width: float = 1.0,
    depth: float = 1.0,
    stochastic_depth_rate: float = 0.2,
    small_images: bool = False,
    depth_divisor: int = DEFAULT_DEPTH_DIVISOR,
) -> list[BlockSpec]:
    """Expands the stage table into concrete blocks: filters and repeats scaled, the first block
    of a stage takes its stride and filter change, stochastic depth rate = rate * index / total.
    """
    stages = [b if isinstance(b, BlockArgs) else decode_block_string(b) for b in blocks]
    repeats = [round_repeats(stage.repeats, depth) for stage in stages]
    total = sum(repeats)
    specs: list[BlockSpec] = []
    for stage_index, (stage, count) in enumerate(zip(stages, repeats, strict=True)):
        in_filters = round_filters(stage.input_filters, width, depth_divisor)
        out_filters = round_filters(stage.output_filters, width, depth_divisor)
        stride = 1 if small_images and stage_index in SMALL_IMAGE_STAGES else stage.strides
        for repeat in range(count):
            specs.append(
                BlockSpec(
                    name=f"block{stage_index + 1}{_letters(repeat)}",
                    stage=stage_index,
                    kernel_size=stage.kernel_size,
                    strides=stride if repeat == 0 else 1,
                    expand_ratio=stage.expand_ratio,
                    input_filters=in_filters if repeat == 0 else out_filters,
                    output_filters=out_filters,
                    se_ratio=stage.se_ratio,
                    id_skip=stage.id_skip,
                    stochastic_depth_rate=stochastic_depth_rate * len(specs) / total,
                )
            )
    return specs


def _letters(index: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'ba' ...: keras.applications style block suffixes, extended
    past 26 repeats (L2 has 22 blocks in one stage, custom variants may have more)."""
    text = ""
    while True:
        text = chr(ord("a") + index % 26) + text
        index //= 26
        if index == 0:
            return text


# --------------------------------------------------------------------------------------------
# The record a built model carries


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Which EfficientNet a model is: its scaling coefficients, block table and, when those are
    exactly a published variant's, that preset's name. Stored in the model's Keras config, so
    weight loading reads the variant instead of guessing it from layer shapes."""

    width_coefficient: float
    depth_coefficient: float
    default_resolution: int
    blocks: tuple[str, ...] = DEFAULT_BLOCKS
    depth_divisor: int = DEFAULT_DEPTH_DIVISOR
    small_images: bool = False
    preset: str | None = None

    @classmethod
    def of(
        cls,
        width_coefficient: float,
        depth_coefficient: float,
        default_resolution: int,
        blocks: Sequence[str | BlockArgs] = DEFAULT_BLOCKS,
        depth_divisor: int = DEFAULT_DEPTH_DIVISOR,
        small_images: bool = False,
    ) -> Architecture:
        """The record of a model built with these arguments; `preset` is filled in when the
        coefficients, block table and divisor are exactly a preset's."""
        strings = block_strings(blocks)
        return cls(
            width_coefficient=float(width_coefficient),
            depth_coefficient=float(depth_coefficient),
            default_resolution=int(default_resolution),
            blocks=strings,
            depth_divisor=int(depth_divisor),
            small_images=bool(small_images),
            preset=matching_preset(width_coefficient, depth_coefficient, strings, depth_divisor),
        )

    def to_config(self) -> dict[str, Any]:
        """JSON-serializable form, as stored in the model config."""
        return {**dataclasses.asdict(self), "blocks": list(self.blocks)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Architecture:
        """Inverse of `to_config`."""
        return cls(**{**config, "blocks": tuple(config.get("blocks", DEFAULT_BLOCKS))})


def matching_preset(
    width: float,
    depth: float,
    blocks: Sequence[str | BlockArgs] = DEFAULT_BLOCKS,
    depth_divisor: int = DEFAULT_DEPTH_DIVISOR,
) -> str | None:
    """The preset with exactly these coefficients and the default block table, else None."""
    if block_strings(blocks) != DEFAULT_BLOCKS or depth_divisor != DEFAULT_DEPTH_DIVISOR:
        return None
    for name, preset in PRESETS.items():
        if (preset.width, preset.depth) == (width, depth):
            return name
    return None


def preset_signature(preset: str) -> tuple[int, int, int]:
    """(stem filters, head filters, number of blocks) of a preset: what its weights look like."""
    width, depth = PRESETS[preset].width, PRESETS[preset].depth
    return (
        round_filters(STEM_FILTERS, width),
        round_filters(HEAD_FILTERS, width),
        len(scaled_blocks(DEFAULT_BLOCKS, width, depth)),
    )


# --------------------------------------------------------------------------------------------
# Variant name or phi -> builder arguments

SCALING_KEYS = ("alpha", "beta", "gamma", "base_resolution", "base_width", "base_depth")


def model_config(variant: str | None = None, *, phi: float | None = None, **scaling: float
                 ) -> dict:
    """Builder arguments (width, depth, resolution, dropout, Keras model name) for a preset
    `variant` or a compound coefficient `phi` (exactly one of the two). With `phi`, the base
    network is scaled as `compound_scaling(phi, **scaling)` does: `scaling` takes its
    `alpha`, `beta`, `gamma`, `base_resolution`, `base_width` and `base_depth` (B0 at 224 by
    default); without `phi` they are ignored.
    """
    if variant is not None and phi is not None:
        raise ValueError(
            f"Give either a variant name or phi, not both (got variant={variant!r}, phi={phi})."
        )
    if phi is not None:
        width, depth, resolution = compound_scaling(phi, **scaling)
        return {
            "width_coefficient": width,
            "depth_coefficient": depth,
            "default_resolution": resolution,
            "dropout_rate": 0.2,
            "name": f"efficientnet_phi{phi:g}",
        }
    preset_name = canonical_name(variant or "efficientnet-b0")
    preset = PRESETS[preset_name]
    return {
        "width_coefficient": preset.width,
        "depth_coefficient": preset.depth,
        "default_resolution": preset.resolution,
        "dropout_rate": preset.dropout,
        "name": preset_name.replace("-", ""),
        "preset": preset_name,
    }


def builder_arguments(
    variant: str | None = None, *, phi: float | None = None, **overrides: Any
) -> tuple[dict[str, Any], str | None]:
    """`create_model` arguments -> (builder arguments, preset name or None): the variant's
    (or phi's) configuration with `overrides` applied. The Keras model name follows the
    variant, so `name` is refused (it once meant the variant)."""
    if "name" in overrides:
        raise TypeError("create_model() got an unexpected keyword argument 'name' "
                        "(the variant is variant=).")
    scaling_args = {key: overrides.pop(key) for key in SCALING_KEYS if key in overrides}
    config = model_config(variant, phi=phi, **scaling_args)
    preset = config.pop("preset", None)
    config.update(overrides)
    return config, preset

