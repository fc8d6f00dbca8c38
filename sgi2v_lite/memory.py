"""GPU memory: the optimisation's gradient checkpointing, offloading, and which settings fit a GPU.

SG-I2V's optimisation (spec step 3) backpropagates through the UNet up to the hooked layers. Its
activations, not the weights, decide whether a guided video fits a GPU. Three things live here:

- `gradient_checkpointing(unet)`: keep only each block's input during the forward and recompute
  the block in the backward. diffusers' own `enable_gradient_checkpointing` covers the ResNet
  blocks and the *spatial* transformer blocks of SVD's UNet, but not the temporal transformer
  blocks and the time mixer beside them: at 576 x 1024 those keep 17.6 GB of activations
  (benchmarks/MEMORY.md). Here each whole spatio-temporal transformer is checkpointed instead.
- `offloaded(modules)`: models wait in system RAM while another one runs on the GPU.
- The modelled peaks (`MODELLED_PEAK_GB`, measured by benchmarks/gpu_memory.py on fake tensors)
  and `choose_settings`, which picks the largest preset and the fewest levers that fit a GPU.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch.utils.checkpoint import checkpoint

GB = 2**30


# ----------------------------------------------------------------- gradient checkpointing
def _spatio_temporal_transformers(unet) -> list[torch.nn.Module]:
    from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel

    return [module for module in unet.modules() if isinstance(module, TransformerSpatioTemporalModel)]


def _checkpointed(forward):
    """`forward`, run under non-reentrant checkpointing when a backward will follow."""

    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


@contextlib.contextmanager
def gradient_checkpointing(unet, enabled: bool = True):
    """Within the block, a backward through `unet` recomputes its blocks instead of storing their
    activations: the ResNet blocks through diffusers' `enable_gradient_checkpointing`, and each
    spatio-temporal transformer (spatial block, temporal block, time mixer, projections) as one
    checkpointed call. Same gradients, about one extra forward pass of time. The UNet is restored
    on exit. `enabled=False` changes nothing."""
    if not enabled:
        yield unet
        return
    was_enabled = unet.is_gradient_checkpointing
    transformers = _spatio_temporal_transformers(unet)
    own_forwards = [transformer.__dict__.get("forward") for transformer in transformers]  # e.g. a hook's
    unet.enable_gradient_checkpointing()
    for transformer in transformers:
        transformer.gradient_checkpointing = False  # its spatial blocks: inside the whole, below
        transformer.forward = _checkpointed(transformer.forward)
    try:
        yield unet
    finally:
        for transformer, forward in zip(transformers, own_forwards):
            del transformer.forward  # back to the class's forward ...
            if forward is not None:
                transformer.forward = forward  # ... or to the one it had
        if was_enabled:
            unet.enable_gradient_checkpointing()
        else:
            unet.disable_gradient_checkpointing()


# ------------------------------------------------------------------------ offloading
@contextlib.contextmanager
def offloaded(modules, enabled: bool = True, phase=None):
    """Within the block, `modules` wait in system RAM (the CPU) and the GPU memory of their weights
    is free; on exit each goes back to the device it was on. `generate` offloads the VAE and the
    image encoder while the UNet denoises, and the UNet while the VAE decodes, as the reference
    implementation does. Nothing moves on a CPU-only machine; the output is the same either way.
    phase(name): a context around the moves (name "offload"), as `sampler.generate` passes it."""
    modules = [module for module in modules if enabled and module is not None]
    devices = [next(module.parameters()).device for module in modules]
    moves = (lambda: phase("offload")) if phase is not None and modules else contextlib.nullcontext
    with moves():
        for module, device in zip(modules, devices):
            if device.type != "cpu":
                module.to("cpu")
    try:
        yield
    finally:
        with moves():
            for module, device in zip(modules, devices):
                if device.type != "cpu":
                    module.to(device)


# ---------------------------------------------------------------- presets by memory
# Peak GPU memory (GiB) of one guided generation in float16, modelled by benchmarks/gpu_memory.py
# on fake tensors (tables in benchmarks/MEMORY.md): model -> (preset, gradient checkpointing,
# offloading) -> peak of the run, largest first.
MODELLED_PEAK_GB = {
    "svd": {  # 14 frames
        ("reference", False, False): 37.79,  # the paper's setting as published
        ("reference", True, False): 13.20,  # the decode (8 frames at a time, UNet still there) sets this one
        ("reference", True, True): 11.08,  # fits a 15 GB T4 with the margin: 12.7 GB
        ("lite", True, False): 9.00,
        ("lite", True, True): 7.64,
    },
    "svd-xt": {  # 25 frames
        ("reference", False, False): 64.15,
        ("reference", True, False): 18.89,
        ("reference", True, True): 17.53,  # 4.8 GB over a T4 with the margin
        ("lite", True, False): 12.77,  # fits a T4: 14.5 GB with the margin
        ("lite", True, True): 11.41,
    },
}
T4_GB = 15.0  # a Colab T4: 15,360 MiB as nvidia-smi reports it
MARGIN_GB = 0.5  # assumed: the CUDA context (~300 MiB on a T4 with CUDA 12) and cuBLAS / cuDNN workspaces
MARGIN_SHARE = 0.10  # assumed: the caching allocator's rounding (512 B blocks, 2 MiB segments) and fragmentation


def needed_gb(peak_gb: float) -> float:
    """What a GPU must have free for a modelled peak: the peak plus the margin the model cannot see."""
    return peak_gb * (1 + MARGIN_SHARE) + MARGIN_GB


def model_key(unet_config) -> str:
    """'toy' for the small models (a latent of at most 32 x 32), else 'svd' or 'svd-xt' by frames."""
    if unet_config["sample_size"] <= 32:
        return "toy"
    return "svd-xt" if unet_config["num_frames"] >= 25 else "svd"


def choose_settings(model: str, memory_gb: float | None, preset: str | None = None) -> tuple[str, dict]:
    """The settings for `model` ('toy', 'svd', 'svd-xt') on a GPU with `memory_gb` usable (None: no
    GPU): the first of `MODELLED_PEAK_GB[model]` (largest and fastest first; only `preset`'s if
    given) whose modelled peak plus the margin fits, else the last, with a warning when a GPU is
    there and even that does not fit. Returns (preset, changes to it)."""
    options = [(key, peak) for key, peak in MODELLED_PEAK_GB.get(model, {}).items() if preset in (None, key[0])]
    if not options:  # the toy models, or a preset the model has no figures for
        return preset or "toy", {}
    fitting = [option for option in options if memory_gb is not None and needed_gb(option[1]) <= memory_gb]
    (name, checkpointing, offload), peak = fitting[0] if fitting else options[-1]
    if memory_gb is not None and not fitting:
        warnings.warn(
            f"{model}: even preset {name!r} is modelled to need {needed_gb(peak):.1f} GB of GPU memory and "
            f"{memory_gb:.1f} GB are usable here: expect an out-of-memory error, or lower height, width or num_frames",
            stacklevel=3,
        )
    return name, {"gradient_checkpointing": checkpointing, "offload": offload}


def usable_gpu_gb(device=None) -> float | None:
    """GiB this process can use on a CUDA device: what is free plus what it holds already (weights
    it loaded count in the modelled peaks). None without CUDA."""
    if not torch.cuda.is_available():
        return None
    device = torch.device(device or "cuda")
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return (free + torch.cuda.memory_reserved(device)) / GB
