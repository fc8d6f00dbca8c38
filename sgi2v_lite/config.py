"""Every knob of SG-I2V in one place, and the named presets.

`reference` holds the paper's published defaults (spec "Defaults of the reference setting"); with
gradient checkpointing and offloading it fits a 15 GB Colab T4 (benchmarks/MEMORY.md). `lite` is
faster (smaller frames, half the steps); `toy` fits the project's small CPU model. Which preset and
memory levers a model gets on a GPU by default: `models.default_config`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass

from .errors import InputError, shorten

# SVD's "M2-3" layers: spatial self-attention of up_blocks[2].attentions[1] and [2]
# (middle resolution: a 36 x 64 grid at 576 x 1024, 640 channels, 10 heads).
SVD_FEATURE_LAYERS = (
    "up_blocks.2.attentions.1.transformer_blocks.0.attn1",
    "up_blocks.2.attentions.2.transformer_blocks.0.attn1",
)

# Inclusive ranges of the numeric settings (ints for whole numbers): outside them a run cannot work, or
# would take absurd time or memory (SVD was trained on 14 or 25 frames of 576 x 1024, the paper runs 50
# steps); torch seeds are unsigned 64-bit.
LIMITS = {
    "height": (1, 2048),
    "width": (1, 2048),
    "num_frames": (2, 128),
    "num_inference_steps": (1, 1000),
    "fps": (1, 240),
    "motion_bucket_id": (0, 1023),
    "noise_aug_strength": (0.0, 10.0),
    "min_guidance_scale": (0.0, 100.0),
    "max_guidance_scale": (0.0, 100.0),
    "decode_chunk_size": (1, 1024),
    "seed": (0, 2**64 - 1),
    "iterations": (0, 1000),
    "learning_rate": (0.0, 1000.0),
    "weight_decay": (0.0, 1000.0),
    "heatmap_sigma": (0.0, 100.0),
    "lowpass_cutoff": (0.0, 10.0),
    "lowpass_order": (1, 64),
}


@dataclass(frozen=True)
class SGI2VConfig:
    """Settings of one guided generation. `None` sizes mean "the model's own" (its UNet's sample
    size x the VAE factor, its UNet's frame count); `None` feature layers mean the model's
    middle-resolution layers (see `attention.default_feature_layers`)."""

    # --- video (SVD's conditioning) -------------------------------------------------
    height: int | None = 576
    width: int | None = 1024
    num_frames: int | None = 14
    num_inference_steps: int = 50
    fps: int = 7  # the UNet is given fps - 1 as its micro-condition, as SVD's pipeline does
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    min_guidance_scale: float = 1.0  # CFG scale of frame 0, rising linearly ...
    max_guidance_scale: float = 3.0  # ... to the last frame
    decode_chunk_size: int = 8
    seed: int = 817
    # --- SG-I2V guidance ------------------------------------------------------------
    guidance: bool = True  # False: plain SVD sampling, no latent optimisation
    optimised_steps: tuple[int, ...] = tuple(range(5, 21))  # denoising steps i (0-based) whose latent is optimised
    iterations: int = 5  # AdamW iterations per optimised step
    learning_rate: float = 0.21
    # "constant": every optimised step uses learning_rate (the paper). "sigma": step i uses
    # learning_rate x sigma_i, so an Adam step moves the latent by the same fraction of its noise
    # level early and late (a constant rate is negligible at sigma 400 and huge at sigma 30).
    learning_rate_scaling: str = "constant"
    weight_decay: float = 0.01  # AdamW's default, kept by the reference implementation
    optimise_first_frame: bool = True  # False: frame 0's latent (the trajectories' anchor) is held fixed
    feature_layers: tuple[str, ...] | None = SVD_FEATURE_LAYERS
    feature_kind: str = "aligned"  # "aligned" (SG-I2V) or "naive" (the layer's own attention)
    heatmap_sigma: float = 0.4  # the loss's Gaussian weights: sigma = heatmap_sigma x half the box side
    frequency_mix: bool = True
    lowpass_cutoff: float = 0.5  # Butterworth d_s (the paper's gamma)
    lowpass_order: int = 4  # Butterworth n
    # --- speed and memory -----------------------------------------------------------
    truncate_forward: bool = True  # stop the optimisation forward after the last hooked block
    gradient_checkpointing: bool = False  # recompute the UNet's blocks in the backward (memory.gradient_checkpointing)
    offload: bool = False  # VAE and image encoder in system RAM while the UNet runs, the UNet while decoding

    def replace(self, **changes) -> SGI2VConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def with_settings(self, settings: list[str]) -> SGI2VConfig:
        """Apply "key=value" strings (the CLI's --set): values are JSON (numbers, true/false, lists)
        or plain strings, e.g. ``learning_rate=0.5``, ``frequency_mix=false``, ``optimised_steps=[2,3]``.
        A value must have the type of the reference preset's (`null` only where a field allows None);
        its range is checked by `validate`."""
        changes = {}
        fields = {f.name: f for f in dataclasses.fields(self)}
        for setting in settings:
            key, sep, text = setting.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in fields:
                raise InputError(f"--set {shorten(setting)!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):  # not JSON, over 4300 digits, or nested too deeply: a plain string
                value = text
            example = getattr(SGI2VConfig(), key)  # the reference preset's value, never None
            if isinstance(value, list):
                value = tuple(value)
            if isinstance(example, float) and type(value) is int:
                try:
                    value = float(value)
                except OverflowError:  # more digits than a float holds, as 1e400 is read: `validate` names the range
                    value = math.inf if value > 0 else -math.inf
            wrong_type = not isinstance(value, type(example)) or isinstance(value, bool) != isinstance(example, bool)
            if wrong_type and not (value is None and "None" in fields[key].type):
                like = example if getattr(self, key) is None else getattr(self, key)
                kind = {
                    "int": "an integer like",
                    "float": "a number like",
                    "bool": "true or false, e.g.",
                    "str": "a string like",
                }
                what = kind.get(type(example).__name__, f"a {type(example).__name__} like")
                raise InputError(f"--set {shorten(setting)!r}: expected {what} {like!r}")
            changes[key] = value
        return self.replace(**changes)

    def validate(self, size_multiple: int = 64) -> None:
        """Raise `InputError` naming the first setting that cannot work. Sizes must be multiples of
        `size_multiple`: the VAE factor x the UNet's downsampling (64 for SVD)."""
        positive = {"num_inference_steps": self.num_inference_steps, "decode_chunk_size": self.decode_chunk_size}
        for name in ("height", "width", "num_frames"):
            if getattr(self, name) is not None:
                positive[name] = getattr(self, name)
        for name, value in positive.items():
            if not isinstance(value, int) or value <= 0:
                raise InputError(f"setting '{name}' must be a positive integer, got {shorten(str(value))}")
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            kind = numbers.Integral if isinstance(low, int) else numbers.Real
            wrong = isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high
            if value is not None and wrong:
                what = "an integer" if kind is numbers.Integral else "a number"
                raise InputError(f"setting '{name}' must be {what} from {low} to {high}, got {shorten(str(value))}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and value % size_multiple:
                raise InputError(f"setting '{name}' must be a multiple of {size_multiple}, got {value}")
        if self.learning_rate_scaling not in ("constant", "sigma"):
            raise InputError(
                f"setting 'learning_rate_scaling' must be 'constant' or 'sigma', got {self.learning_rate_scaling!r}"
            )
        if self.feature_kind not in ("aligned", "naive"):
            raise InputError(f"setting 'feature_kind' must be 'aligned' or 'naive', got {self.feature_kind!r}")
        if not self.heatmap_sigma > 0:
            raise InputError(f"setting 'heatmap_sigma' must be > 0, got {self.heatmap_sigma}")
        steps, layers = self.optimised_steps, self.feature_layers
        if not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in steps):
            raise InputError(f"setting 'optimised_steps' must hold step indices (integers), got {shorten(str(steps))}")
        if layers is not None and not all(isinstance(name, str) for name in layers):
            raise InputError(f"setting 'feature_layers' must hold layer names (strings), got {shorten(str(layers))}")
        outside = [i for i in self.optimised_steps if not 0 <= i < self.num_inference_steps]
        if outside:
            raise InputError(
                f"optimised steps {shorten(str(outside))} lie outside the {self.num_inference_steps} denoising steps "
                "(0-based)"
            )


def scaled_steps(first: int, last: int, reference_steps: int, num_steps: int) -> tuple[int, ...]:
    """The optimised-step window [first, last] of a `reference_steps` schedule, moved to the same
    fraction of a `num_steps` schedule (e.g. 5..20 of 50 -> 2..10 of 25)."""
    lo = round(first * num_steps / reference_steps)
    hi = max(lo, round(last * num_steps / reference_steps))
    return tuple(range(lo, hi + 1))


PRESETS: dict[str, SGI2VConfig] = {
    "reference": SGI2VConfig(),
    # Faster: smaller frames (the aligned attention and its backward grow with the square of the
    # token count), half the denoising steps, the same fraction of them optimised.
    "lite": SGI2VConfig(
        height=448,
        width=768,
        num_inference_steps=25,
        optimised_steps=scaled_steps(5, 20, 50, 25),
        decode_chunk_size=4,
        gradient_checkpointing=True,
    ),
    # The project's CPU model: its own size and frame count, 25 steps, its middle-resolution layers.
    "toy": SGI2VConfig(
        height=None,
        width=None,
        num_frames=None,
        num_inference_steps=25,
        optimised_steps=scaled_steps(5, 20, 50, 25),
        # The paper's constant 0.21 leaves the toy model's videos unguided, and a constant rate large
        # enough to guide at sigma 420 (step 2) swamps the latent at sigma 35 (step 10). Scaled with
        # sigma, each Adam step moves the latent by 10 % of its noise level; frame 0, the anchor of
        # every trajectory, is held fixed; 3 iterations per step do as well as 5 in 60 % of the
        # passes. Measured on held-out scenes in data/toy-svd/README.md (ObjMC 9.44 px with the
        # preset before these changes, 7.35 px with them, on 16 scenes).
        iterations=3,
        learning_rate=0.1,
        learning_rate_scaling="sigma",
        optimise_first_frame=False,
        feature_layers=None,
        decode_chunk_size=8,
    ),
}


def get_preset(name: str) -> SGI2VConfig:
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
