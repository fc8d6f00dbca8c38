"""Semantically aligned features from SVD's spatial self-attention (SG-I2V Sec. 3.2, spec step 1).

In SVD's spatial self-attention the frames are folded into the batch, (B*F, h*w, C), and each frame
attends only to itself, so the same object gets unrelated features in different frames. SG-I2V
reads, in a few chosen layers, an extra attention in which every frame's queries look at frame 0's
keys and values (detached):

    aligned_j = softmax(Q_j K_0^T / sqrt(d)) V_0          (taken before `to_out`)

Every aligned feature is a convex combination of frame 0's value tokens, so features are
comparable across frames. The UNet's own forward pass is untouched: the extra attention is only
recorded for the loss, and its gradient reaches the latent only through the queries Q_j.

As in diffusers, behaviour changes by swapping attention processors, never by editing the UNet:
`record_features(unet, layers, ...)` installs a `FeatureRecordingProcessor` on each chosen layer
and restores the old processors on exit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

FEATURE_KINDS = ("aligned", "naive")


def spatial_self_attention_layers(unet) -> list[str]:
    """Names of every spatial self-attention layer (`...transformer_blocks.K.attn1`) of an SVD UNet,
    in module order. The temporal layers (`temporal_transformer_blocks`) are left out."""
    return [
        name
        for name, _ in unet.named_modules()
        if name.endswith(".attn1") and ".transformer_blocks." in name and "temporal_transformer_blocks" not in name
    ]


def default_feature_layers(unet) -> tuple[str, ...]:
    """The model's counterpart of SVD's M2-3 layers: the spatial self-attention of every attention
    block but the first in the up block that runs at half the latent's resolution (up block n - 2
    of n; SVD: `up_blocks[2]`, attentions 1 and 2, a 36 x 64 grid for a 72 x 128 latent). A UNet
    whose block there has no attention uses its last up block with attention."""
    with_attention = [i for i, block in enumerate(unet.up_blocks) if hasattr(block, "attentions")]
    if not with_attention:
        raise ValueError("this UNet has no up block with attention to take features from")
    index = len(unet.up_blocks) - 2
    if index not in with_attention:
        index = with_attention[-1]
    count = len(unet.up_blocks[index].attentions)
    return tuple(
        f"up_blocks.{index}.attentions.{a}.transformer_blocks.0.attn1" for a in range(1 if count > 1 else 0, count)
    )


class StopForward(Exception):
    """Raised after the last hooked block so that the UNet's forward stops early (spec step 3)."""


@dataclass
class FeatureRecorder:
    """Holds the features recorded in one UNet forward pass.

    num_frames: F, to find the conditional half of a CFG batch (the last F rows of B*F).
    latent_hw:  (H, W) of the latent, to fold each layer's h*w tokens back into a grid.
    features:   layer name -> (F, C, h, w), conditional batch element only.
    """

    num_frames: int
    latent_hw: tuple[int, int]
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    def store(self, name: str, tokens: torch.Tensor) -> None:
        """tokens: (F, h*w, C) -> stored as (F, C, h, w)."""
        frames, num_tokens, channels = tokens.shape
        height, width = self.latent_hw
        scale = round((height * width / num_tokens) ** 0.5)
        h, w = -(-height // scale), -(-width // scale)  # ceil division, as the UNet's downsamplers do
        if h * w != num_tokens:
            raise RuntimeError(f"layer {name}: {num_tokens} tokens do not fit a grid of a {height}x{width} latent")
        self.features[name] = tokens.transpose(1, 2).reshape(frames, channels, h, w)

    def clear(self) -> None:
        self.features = {}


class FeatureRecordingProcessor:
    """Attention processor for one spatial self-attention layer: returns the layer's usual output
    (as diffusers' `AttnProcessor2_0`) and records `kind` features of the conditional frames:

    - "aligned": softmax(Q_j K_0^T / sqrt(d)) V_0 with K_0, V_0 of frame 0 detached (SG-I2V);
    - "naive":   the layer's own attention output softmax(Q_j K_j^T / sqrt(d)) V_j.
    """

    def __init__(self, recorder: FeatureRecorder, name: str, kind: str = "aligned"):
        if kind not in FEATURE_KINDS:
            raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, got {kind!r}")
        self.recorder, self.name, self.kind = recorder, name, kind

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None or attn.spatial_norm is not None:
            raise ValueError(f"{self.name}: FeatureRecordingProcessor handles plain self-attention only")
        batch_frames, num_tokens, _ = hidden_states.shape  # (B*F, h*w, C)
        residual = hidden_states
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        def split_heads(x):  # (B*F, h*w, heads*d) -> (B*F, heads, h*w, d)
            return x.view(batch_frames, num_tokens, attn.heads, -1).transpose(1, 2)

        query = split_heads(attn.to_q(hidden_states))
        key = split_heads(attn.to_k(hidden_states))
        value = split_heads(attn.to_v(hidden_states))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        output = F.scaled_dot_product_attention(query, key, value)  # (B*F, heads, h*w, d)

        frames = self.recorder.num_frames
        if self.kind == "naive":
            heads_features = output[-frames:]  # (F, heads, h*w, d)
        else:
            key_0 = key[-frames].detach().expand_as(key[-frames:])  # frame 0 of the conditional video
            value_0 = value[-frames].detach().expand_as(value[-frames:])
            heads_features = F.scaled_dot_product_attention(query[-frames:], key_0, value_0)
        self.recorder.store(self.name, heads_features.transpose(1, 2).flatten(2))  # (F, h*w, C)

        output = output.transpose(1, 2).flatten(2).to(query.dtype)  # (B*F, h*w, C)
        output = attn.to_out[1](attn.to_out[0](output))
        if attn.residual_connection:
            output = output + residual
        return output / attn.rescale_output_factor


def _top_level_block(name: str) -> str:
    """'up_blocks.2.attentions.1.transformer_blocks.0.attn1' -> 'up_blocks.2'."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] in ("down_blocks", "up_blocks") else parts[0]


def last_hooked_block(unet, layers) -> str:
    """The top-level UNet block (in execution order: down, mid, up) that holds the last of `layers`."""
    order = [f"down_blocks.{i}" for i in range(len(unet.down_blocks))] + ["mid_block"]
    order += [f"up_blocks.{i}" for i in range(len(unet.up_blocks))]
    return max((_top_level_block(name) for name in layers), key=order.index)


def check_layers(unet, layers) -> None:
    """Raise a clear error if a layer is not a spatial self-attention layer of this UNet."""
    available = spatial_self_attention_layers(unet)
    for name in layers:
        if name not in available:
            raise ValueError(
                f"feature layer {name!r} is not a spatial self-attention layer of this UNet; "
                f"available: {', '.join(available)}"
            )


@contextlib.contextmanager
def record_features(unet, layers, num_frames: int, latent_hw: tuple[int, int], kind="aligned", stop_early=False):
    """Install recording processors on `layers` for the duration of the block; yields the recorder.

    kind:       "aligned" or "naive" for every layer, or a dict layer -> kind.
    stop_early: raise `StopForward` right after the top-level block holding the last hooked layer,
                so an optimisation pass skips the rest of the UNet (catch it with `run_to_features`).
    """
    check_layers(unet, layers)
    kinds = kind if isinstance(kind, dict) else {name: kind for name in layers}
    recorder = FeatureRecorder(num_frames=num_frames, latent_hw=tuple(latent_hw))
    modules = dict(unet.named_modules())
    previous = {name: modules[name].processor for name in layers}
    for name in layers:
        modules[name].set_processor(FeatureRecordingProcessor(recorder, name, kinds[name]))
    hook = None
    if stop_early:

        def stop(module, args, output):  # not re-run by gradient checkpointing (it wraps inner modules)
            raise StopForward

        hook = modules[last_hooked_block(unet, layers)].register_forward_hook(stop)
    try:
        yield recorder
    finally:
        for name, processor in previous.items():
            modules[name].set_processor(processor)
        if hook is not None:
            hook.remove()


def run_to_features(unet, recorder: FeatureRecorder, *unet_args, **unet_kwargs) -> dict[str, torch.Tensor]:
    """Run the UNet until the recorder has its features (stopping early if it was asked to) and
    return them: layer name -> (F, C, h, w)."""
    recorder.clear()
    try:
        unet(*unet_args, **unet_kwargs)
    except StopForward:
        pass
    return dict(recorder.features)
