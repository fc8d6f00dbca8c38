"""SG-I2V on SVD's full-size architecture: time and peak memory by phase, the reference way vs our way.

    python benchmarks/gpu_svd.py [--out benchmarks/RESULTS.md]          # a CUDA GPU (H100: a few minutes)
    python benchmarks/gpu_svd.py --tiny                                   # CPU, tiny models: proves it works

Builds SVD's UNet (1.52 B parameters), VAE and CLIP ViT-H image encoder from the published configs
in `sgi2v_lite/models.py` with random weights, directly on the device (the cost does not depend on
the weights; nothing is downloaded), and times the guided sampler end to end and by phase (CUDA
events; `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` at every phase boundary):

    encode (CLIP + VAE) | denoising steps (CFG) | optimisation iterations | frequency mix | decode (VAE)
    | offload / reload (VAE and image encoder to the CPU and back) | UNet cast to fp32 and back

for these runs (`--runs`):

  ref-ref    `reference` preset, the reference way: UNet stored in fp16, cast to fp32 for each optimised
             step and run under torch.autocast(fp16); gradient checkpointing on; forward truncated after
             up_blocks[2] (as the reference); VAE and image encoder on the CPU during denoising.
             No GradScaler: the loss is a scalar of features, AdamW's step does not depend on the
             gradient's scale, and a scaler's cost (one multiply, an unscale and an inf check of a
             2 MB gradient) is negligible beside the passes timed here.
  ref-ours   `reference` preset, our way: the UNet in half precision end to end (`--dtype`, fp16 by
             default, bf16 as an option), the same truncated forward, gradient checkpointing off and
             on (`--checkpointing both|on|off`: both are measured by default), VAE and image
             encoder offloaded while idle (`--no-offload` keeps them).
  lite-ours  `lite` preset, our way (both checkpointing settings).
  lite-ref   `lite` preset, the reference way (not run by default).

Each run is the package's own `sampler.generate`, its parts timed through its `phase` argument
(encode, offload, the guidance step's optimisation and frequency mix, each denoising step, decode);
the reference way's fp32 UNet under autocast is entered in the same place (`reference_optimisation`
around the optimisation). The FLOP counts and the equality check call the same step functions
(`noise_prediction`, `optimise_latent`, `conditional_features`).

Also printed: the FLOP count of each run (torch's FlopCounterMode on one CFG forward, one
optimisation pass, one encode and one decode, on the device that runs them, times the number of
each), the same count for the presets' full sizes on the meta device (architecture-exact, no
compute: runs anywhere), the measured bf16 matmul rate (8192^3 on CUDA) and the fraction of it
each run achieves, the issue's rough floor (~7 PFLOP, ~9 s at 790 TFLOP/s) beside the exact count,
and an equality check: features and loss of our way vs the reference way on the same latent.

`--tiny` swaps in tiny configs of the same architecture (SVD's block types and layer names, 32-64
channels) and tiny sizes, so the whole script runs on a CPU in well under a minute; on a CPU there
are no CUDA events (time.perf_counter) and no allocator statistics (memory: n/a).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import platform
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count  # noqa: E402

from sgi2v_lite.attention import record_features  # noqa: E402
from sgi2v_lite.config import SGI2VConfig, get_preset, scaled_steps  # noqa: E402
from sgi2v_lite.loss import feature_map  # noqa: E402
from sgi2v_lite.memory import gradient_checkpointing  # noqa: E402
from sgi2v_lite.models import (  # noqa: E402
    SVD_IMAGE_ENCODER_CONFIG,
    SVD_UNET_CONFIG,
    SVD_VAE_CONFIG,
    svd_scheduler,
)
from sgi2v_lite.sampler import (  # noqa: E402
    Conditioning,
    conditional_features,
    decode,
    generate,
    guidance_scales,
    noise_prediction,
    optimise_latent,
    prepare,
    resolve_config,
)
from sgi2v_lite.tracks import load_tracks  # noqa: E402

GB = 1e9  # memory in GB = 10^9 bytes, as the issue's targets (a T4's 15 GiB are 16.1 GB)
ISSUE_FLOOR_FLOP = 7e15  # the issue's rough floor for the reference setting
ISSUE_RATE = 790e12  # ... and the rate it divides by (about an H100's dense bf16 rate)

# Tiny configs of SVD's architecture: the same block types, 4 levels and 2 layers per block, so the
# reference feature layers (up_blocks.2.attentions.{1,2}) exist; 32-64 channels.
TINY_UNET_CONFIG = dict(
    SVD_UNET_CONFIG,
    sample_size=8,
    block_out_channels=(32, 32, 64, 64),
    num_attention_heads=(2, 2, 4, 4),
    cross_attention_dim=32,
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24,
    num_frames=4,
)
TINY_VAE_CONFIG = dict(SVD_VAE_CONFIG, block_out_channels=(32, 32, 32, 32), layers_per_block=1, sample_size=64)
TINY_IMAGE_ENCODER_CONFIG = dict(
    SVD_IMAGE_ENCODER_CONFIG,
    hidden_size=32,
    intermediate_size=37,
    projection_dim=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=4,
)
# --tiny sizes: (height, width) per preset, frames, steps, iterations, decode chunk
TINY_SIZES = {"reference": (64, 128), "lite": (64, 64)}
TINY_FRAMES, TINY_STEPS, TINY_ITERATIONS, TINY_CHUNK = 4, 3, 2, 2

RUNS = {  # name -> (preset, way)
    "ref-ref": ("reference", "reference"),
    "ref-ours": ("reference", "ours"),
    "lite-ours": ("lite", "ours"),
    "lite-ref": ("lite", "reference"),
}
PHASES = (
    "encode (CLIP + VAE)",
    "denoising steps (CFG)",
    "optimisation iterations",
    "frequency mix",
    "decode (VAE)",
    "offload / reload",
    "UNet cast to fp32 and back",
)
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

# torch's FlopCounterMode has no formula for the CPU flash-attention kernel (it counts 0 FLOPs for
# every attention on a CPU): give it the same formulas as the CUDA kernels.
CPU_SDPA_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: (
        lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v)
    ),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        lambda g, q, k, v, *args, out_shape=None, **kwargs: sdpa_backward_flop_count(g, q, k, v)
    ),
}


_STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr (the report goes to stdout)."""
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS)


def quiet_libraries() -> None:
    """diffusers warns at every `.to(dtype)` of a model, transformers about torchvision: silence both."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)


# ----------------------------------------------------------------------------------- models
def build_svd(device, dtype, tiny: bool = False, seed: int = 0, encoder_dtype=None):
    """A `StableVideoDiffusionPipeline` with random weights from SVD's published configs (or the
    tiny ones), the three models constructed directly on `device` (a CUDA GPU initialises 2.2 B
    parameters in a second or two; the meta device allocates nothing) and then cast: the UNet to
    `dtype`, the VAE and image encoder to `encoder_dtype` (default `dtype`).

    `sgi2v_lite.models.build_pipeline` cannot be used under a `torch.device` context: it builds the
    scheduler there too, which calls `.item()` (fails on meta). Also, diffusers' AlphaBlender
    creates its `mix_factor` with `torch.Tensor(...)`, which ignores the device context: the final
    `.to(device)` moves those few stray CPU parameters."""
    from diffusers import AutoencoderKLTemporalDecoder, StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    unet_config, vae_config, clip_config = (
        (TINY_UNET_CONFIG, TINY_VAE_CONFIG, TINY_IMAGE_ENCODER_CONFIG)
        if tiny
        else (SVD_UNET_CONFIG, SVD_VAE_CONFIG, SVD_IMAGE_ENCODER_CONFIG)
    )
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNetSpatioTemporalConditionModel(**unet_config)
        vae = AutoencoderKLTemporalDecoder(**vae_config)
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_config))
    for model, model_dtype in ((unet, dtype), (vae, encoder_dtype or dtype), (image_encoder, encoder_dtype or dtype)):
        model.to(device=device, dtype=model_dtype).requires_grad_(False).eval()
    size = clip_config["image_size"]
    pipe = StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=svd_scheduler(),
        feature_extractor=CLIPImageProcessor(crop_size=size, size=size),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def parameter_count(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e9


def set_checkpointing(unet, enabled: bool) -> None:
    if enabled:
        unet.enable_gradient_checkpointing()
    else:
        unet.disable_gradient_checkpointing()


@contextlib.contextmanager
def reference_optimisation(unet, autocast_dtype, device_type: str, timer=None):
    """The reference way around one optimised step: the UNet cast to fp32, its passes under
    torch.autocast(`autocast_dtype`), then cast back to its storage dtype (both casts timed as a
    phase when a timer is given). The package has no hook for this, and needs none:
    `optimise_latent` is a plain function, so wrapping the call is enough."""
    cast = (lambda: timer.phase("UNet cast to fp32 and back")) if timer else contextlib.nullcontext
    storage = unet.dtype
    with cast():
        unet.to(torch.float32)
    try:
        with torch.autocast(device_type, dtype=autocast_dtype):
            yield
    finally:
        with cast():
            unet.to(storage)


# ------------------------------------------------------------------------------- timing
class PhaseTimer:
    """Accumulates time and peak memory per phase. CUDA: events around every phase segment (read
    after one synchronize at the end) and `max_memory_allocated` / `max_memory_reserved` after a
    `reset_peak_memory_stats` at every phase start, so a phase's peak includes what is resident.
    CPU: time.perf_counter, no memory figures."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.segments = defaultdict(list)  # phase -> [(start, end, units, peak_alloc, peak_reserved)]
        self.start = self.end = None

    def _mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    @staticmethod
    def _elapsed_ms(start, end) -> float:
        return start.elapsed_time(end) if isinstance(start, torch.cuda.Event) else (end - start) * 1e3

    def begin(self):
        if self.cuda:
            torch.cuda.synchronize()
        self.wall_start = time.perf_counter()
        self.start = self._mark()

    def finish(self):
        self.end = self._mark()
        if self.cuda:
            torch.cuda.synchronize()
        self.wall_ms = (time.perf_counter() - self.wall_start) * 1e3

    @contextlib.contextmanager
    def phase(self, name: str, units: int = 1):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = self._mark()
        yield
        end = self._mark()
        if self.cuda:
            peaks = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        else:
            peaks = None, None
        self.segments[name].append((start, end, units, *peaks))

    def summary(self) -> dict:
        """phase -> dict(calls, units, ms, peak_gb, reserved_gb), and "total"."""
        if self.cuda:
            torch.cuda.synchronize()
        rows = {}
        for name, segments in self.segments.items():
            peaks = [s[3] for s in segments if s[3] is not None]
            reserved = [s[4] for s in segments if s[4] is not None]
            rows[name] = dict(
                calls=len(segments),
                units=sum(s[2] for s in segments),
                ms=sum(self._elapsed_ms(s[0], s[1]) for s in segments),
                peak_gb=max(peaks) / GB if peaks else None,
                reserved_gb=max(reserved) / GB if reserved else None,
            )
        peaks = [r["peak_gb"] for r in rows.values() if r["peak_gb"] is not None]
        reserved = [r["reserved_gb"] for r in rows.values() if r["reserved_gb"] is not None]
        rows["total"] = dict(
            calls=1,
            units=1,
            ms=self._elapsed_ms(self.start, self.end),
            wall_ms=self.wall_ms,
            peak_gb=max(peaks) if peaks else None,
            reserved_gb=max(reserved) if reserved else None,
        )
        return rows


# ------------------------------------------------------------------------------ the run
@dataclass
class Run:
    key: str  # "ref-ours"
    name: str  # "reference, our way (ckpt off)"
    preset: str
    way: str  # "reference" | "ours"
    checkpointing: bool
    storage_dtype: torch.dtype  # the UNet's dtype during the CFG steps
    autocast_dtype: torch.dtype | None  # the reference way's autocast dtype (its UNet is fp32 then)
    offload: bool
    config: SGI2VConfig = None
    result: dict = field(default_factory=dict)


# the package's phase names -> this report's, and how many units (steps, iterations) a call counts
PHASE_LABELS = {
    "encode": "encode (CLIP + VAE)",
    "denoising": "denoising steps (CFG)",
    "optimisation": "optimisation iterations",
    "frequency mix": "frequency mix",
    "decode": "decode (VAE)",
    "offload": "offload / reload",
}


def guided_run(pipe, run: Run, config: SGI2VConfig, image, tracks, device, timer: PhaseTimer):
    """One guided generation: `sampler.generate` itself, each part timed by `timer` through its
    `phase` argument; the reference way's optimisation runs inside `reference_optimisation`."""

    @contextlib.contextmanager
    def phase(name):
        reference_way = name == "optimisation" and run.way == "reference"
        precision = reference_optimisation(pipe.unet, run.autocast_dtype, device.type, timer) if reference_way else None
        with precision or contextlib.nullcontext():
            with timer.phase(PHASE_LABELS[name], config.iterations if name == "optimisation" else 1):
                yield

    losses = []
    timer.begin()
    result = generate(
        pipe,
        image,
        tracks,
        config.replace(offload=run.offload),
        progress=False,
        phase=phase,
        callback=lambda info: info["optimised"] and losses.append(info["losses"]),
    )
    timer.finish()
    return dict(latents=result.latents, frames=result.frames, losses=losses)


def reset_components(pipe, run: Run, device) -> None:
    """Untimed set-up before a run: every model on the device, the UNet in the run's storage dtype,
    gradient checkpointing as the run wants it, the allocator's cache emptied."""
    pipe.image_encoder.to(device)
    pipe.vae.to(device)
    pipe.unet.to(run.storage_dtype)
    pipe.unet.requires_grad_(False)
    set_checkpointing(pipe.unet, run.checkpointing)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def short_config(config: SGI2VConfig) -> SGI2VConfig:
    """A warm-up: every phase once at the run's size (2 steps, 1 optimised step of 1 iteration)."""
    return config.replace(num_inference_steps=2, optimised_steps=(1,), iterations=1)


# ------------------------------------------------------------------------------- FLOPs
def cfg_forward_flops(unet, scheduler, latents, timestep, cond: Conditioning, config: SGI2VConfig) -> int:
    """FLOPs of one denoising step's UNet forward (`sampler.noise_prediction`: the CFG batch)."""
    scales = guidance_scales(config, latents.device, latents.dtype)
    with flop_counter() as counter:
        noise_prediction(unet, scheduler, latents, timestep, cond, scales)
    return counter.get_total_flops()


def first_optimised_step(pipe, config: SGI2VConfig, image, tracks, device):
    """The state at the first optimised step, from `sampler.prepare` (conditioning, boxes on the
    latent grid, a fresh scheduler): that step's timestep and the initial noise at its sigma."""
    run = prepare(pipe, image, tracks, config)
    step = min(config.optimised_steps)
    latents = run.latents / run.scheduler.init_noise_sigma * run.scheduler.sigmas[step].to(device)
    return run.cond, run.scheduler, run.scheduler.timesteps[step], latents, run.box_cells, run.valid


def measured_flops(pipe, config: SGI2VConfig, image, tracks, device, checkpointing_modes) -> dict:
    """FLOPs of each kind of work, counted on the device that runs it with the package's own
    functions: encode, one CFG forward (batch 2), one optimisation pass (`optimise_latent` with one
    iteration: forward to up_blocks[2], box loss, backward; per checkpointing setting), one decode."""
    unet = pipe.unet
    with flop_counter() as counter:
        cond, scheduler, timestep, latents, box_cells, valid = first_optimised_step(pipe, config, image, tracks, device)
    counts = {"encode": counter.get_total_flops()}
    counts["cfg_forward"] = cfg_forward_flops(unet, scheduler, latents, timestep, cond, config)
    for checkpointing in checkpointing_modes:
        one = config.replace(iterations=1, gradient_checkpointing=checkpointing)  # memory.gradient_checkpointing
        with flop_counter() as counter, torch.enable_grad():
            optimise_latent(
                unet,
                scheduler,
                latents,
                timestep,
                cond,
                box_cells,
                valid,
                one,
                sigma=float(scheduler.sigmas[min(config.optimised_steps)]),
            )
        counts[f"optimisation_pass_ckpt_{'on' if checkpointing else 'off'}"] = counter.get_total_flops()
    with flop_counter() as counter:
        decode(pipe, latents, config.decode_chunk_size)
    counts["decode"] = counter.get_total_flops()
    return counts


def meta_flops(meta_pipe, config: SGI2VConfig) -> dict:
    """The same counts for SVD's full-size architecture on the meta device (shapes only, no compute,
    so it runs anywhere in seconds). The optimisation pass uses a stand-in loss (the mean square of
    the feature map) because the box loss reads values (`.item()`); FlopCounterMode counts only
    matmuls, convolutions and attention, so any loss that reaches every feature gives the same
    count. On meta, attention takes torch's math path: 2 matmuls forward, and backward only the
    gradients needed; CUDA's flash/efficient kernels count 5 matmuls backward (they recompute the
    scores and always compute dK and dV), so the GPU's own count is a little higher."""
    unet, device = meta_pipe.unet, torch.device("meta")
    half = unet.dtype
    frames, latent_hw = config.num_frames, (config.height // 8, config.width // 8)
    scheduler = svd_scheduler()
    scheduler.set_timesteps(config.num_inference_steps)
    timestep = scheduler.timesteps[min(config.optimised_steps)]

    def cond(batch):
        return Conditioning(
            torch.zeros(batch, 1, unet.config.cross_attention_dim, device=device, dtype=half),
            torch.zeros(batch, frames, unet.config.in_channels // 2, *latent_hw, device=device, dtype=half),
            torch.zeros(batch, 3, device=device, dtype=half),
        )

    latents = torch.zeros(1, frames, unet.config.out_channels, *latent_hw, device=device)
    counts = {"cfg_forward": cfg_forward_flops(unet, scheduler, latents, timestep, cond(2), config)}
    for checkpointing in (False, True):
        variable = latents.clone().requires_grad_(True)
        with flop_counter() as counter, torch.enable_grad(), gradient_checkpointing(unet, checkpointing):
            with record_features(unet, config.feature_layers, frames, latent_hw, stop_early=True) as recorder:
                features = conditional_features(unet, recorder, scheduler, variable, timestep, cond(1))
                loss = feature_map(features, latent_hw).square().mean()
                loss.backward()
        counts[f"optimisation_pass_ckpt_{'on' if checkpointing else 'off'}"] = counter.get_total_flops()
    with flop_counter() as counter, torch.no_grad():
        clip_size = meta_pipe.image_encoder.config.image_size
        meta_pipe.image_encoder(torch.zeros(1, 3, clip_size, clip_size, device=device, dtype=half))
        meta_pipe.vae.encode(torch.zeros(1, 3, config.height, config.width, device=device, dtype=half))
    counts["encode"] = counter.get_total_flops()
    with flop_counter() as counter, torch.no_grad():
        meta_pipe.decode_latents(latents.to(half), frames, config.decode_chunk_size)
    counts["decode"] = counter.get_total_flops()
    return counts


def run_flops(counts: dict, config: SGI2VConfig, checkpointing: bool) -> dict:
    passes = len(config.optimised_steps) * config.iterations
    pass_flops = counts[f"optimisation_pass_ckpt_{'on' if checkpointing else 'off'}"]
    parts = dict(
        encode=counts["encode"],
        cfg=config.num_inference_steps * counts["cfg_forward"],
        optimisation=passes * pass_flops,
        decode=counts["decode"],
    )
    parts["total"] = sum(parts.values())
    return parts


def matmul_rate(device, dtype, size: int, iterations: int) -> float:
    """FLOP/s of a size^3 matmul in `dtype` (CUDA events on a GPU, perf_counter on a CPU)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iterations):
            a @ b
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1e3
    else:
        started = time.perf_counter()
        for _ in range(iterations):
            a @ b
        seconds = time.perf_counter() - started
    return 2 * size**3 * iterations / seconds


# ------------------------------------------------------------------------ equality check
def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: the largest error relative to the tensor's scale (an element-wise
    ratio would be dominated by elements near zero)."""
    a, b = a.float(), b.float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def equality_check(pipe, config, image, tracks, device, ours_dtype, ref_autocast_dtype, modes) -> dict:
    """Features and loss of one optimisation pass on the same latent (the first optimised step's
    sigma), the reference way (fp32 UNet under autocast, checkpointing on) vs our way (half
    precision, each checkpointing setting). Call with the UNet stored in fp16: its fp32 copy holds
    the same values, so the two ways differ only in arithmetic."""
    unet = pipe.unet
    cond, scheduler, timestep, latents, box_cells, valid = first_optimised_step(pipe, config, image, tracks, device)
    one = config.replace(iterations=1, gradient_checkpointing=False)

    def one_pass(dtype, one=one):
        # the conditioning in the UNet's storage dtype, as encode_conditioning makes it
        cast = Conditioning(*(t.to(dtype) for t in (cond.image_embeddings, cond.image_latents, cond.added_time_ids)))
        with torch.enable_grad():
            optimised, losses, features = optimise_latent(
                unet,
                scheduler,
                latents,
                timestep,
                cast,
                box_cells,
                valid,
                one,
                sigma=float(scheduler.sigmas[min(config.optimised_steps)]),
            )
        return losses[0], features, optimised - latents

    storage = unet.dtype
    set_checkpointing(unet, True)  # the reference way: diffusers' own checkpointing
    with reference_optimisation(unet, ref_autocast_dtype, device.type):
        reference = one_pass(storage)
    set_checkpointing(unet, False)
    unet.to(ours_dtype)
    results = {}
    for checkpointing in modes:  # our way: memory.gradient_checkpointing, through the config
        loss, features, step_taken = one_pass(ours_dtype, one.replace(gradient_checkpointing=checkpointing))
        results[f"ckpt {'on' if checkpointing else 'off'}"] = dict(
            loss_ours=loss,
            loss_reference=reference[0],
            loss=abs(loss - reference[0]) / max(abs(reference[0]), 1e-30),
            features=max(relative_difference(features[k], reference[1][k]) for k in features),
            # AdamW's first step is about -lr * sign(gradient): the share of latent elements whose
            # step agrees in sign with the reference way's says how alike the gradients are.
            step_sign_agreement=float((torch.sign(step_taken) == torch.sign(reference[2])).float().mean()),
        )
    unet.to(storage)
    return results


# ------------------------------------------------------------------------------ report
def fmt_ms(ms):
    return f"{ms:,.1f}" if ms is not None else "n/a"


def fmt_gb(gb):
    return f"{gb:.2f}" if gb is not None else "n/a"


def fmt_flop(flop):
    if flop >= 1e15:
        return f"{flop / 1e15:.3f} PFLOP"
    if flop >= 1e12:
        return f"{flop / 1e12:.2f} TFLOP"
    return f"{flop / 1e9:.3f} GFLOP"


def describe(config: SGI2VConfig) -> str:
    steps = config.optimised_steps
    window = f"{steps[0]}..{steps[-1]}" if steps == tuple(range(steps[0], steps[-1] + 1)) else ",".join(map(str, steps))
    return (
        f"{config.height}x{config.width}, {config.num_frames} frames, {config.num_inference_steps} steps, "
        f"optimised {window} ({len(steps)} x {config.iterations} it), decode chunk {config.decode_chunk_size}"
    )


def dtype_name(dtype) -> str:
    return {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype))


def versions() -> str:
    import diffusers
    import transformers

    return (
        f"python {platform.python_version()}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"transformers {transformers.__version__}"
    )


def device_name(device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / GB:.1f} GB), CUDA {torch.version.cuda}"
    threads = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' if threads != 1 else ''})"


def flops_section(add, args, cuda, flops, meta, rates) -> None:
    """The FLOP tables and the comparison with the issue's floor."""
    where = "on the GPU, with its own kernels" if cuda else "the CPU attention kernel given the CUDA kernels' formulas"
    add(f"Counted with torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, attention; {where}).\n")
    add(
        "| preset | where counted | setting | encode | CFG forward (batch 2) | optimisation pass, ckpt off | "
        "optimisation pass, ckpt on | decode | run total, ckpt off | run total, ckpt on |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|")
    for label, table in (("this run's device", flops), ("meta device, full size", meta)):
        for preset, (config, counts) in table.items():
            totals = {ck: run_flops(counts, config, ck)["total"] for ck in (False, True)}
            add(
                f"| {preset} | {label} | {describe(config)} | {fmt_flop(counts['encode'])} | "
                f"{fmt_flop(counts['cfg_forward'])} | {fmt_flop(counts['optimisation_pass_ckpt_off'])} | "
                f"{fmt_flop(counts['optimisation_pass_ckpt_on'])} | {fmt_flop(counts['decode'])} | "
                f"{fmt_flop(totals[False])} | {fmt_flop(totals[True])} |"
            )
    for label, table in (("this run's device", flops), ("meta device, full size", meta)):
        if "reference" in table:
            config, counts = table["reference"]
            if (config.height, config.width, config.num_frames) != (576, 1024, 14):
                continue
            exact = run_flops(counts, config, False)
            add(
                f"\nReference setting ({label}): exact {fmt_flop(exact['total'])} without checkpointing "
                f"(CFG steps {fmt_flop(exact['cfg'])}, optimisation {fmt_flop(exact['optimisation'])}, "
                f"encode + decode {fmt_flop(exact['encode'] + exact['decode'])}) = "
                f"**{exact['total'] / ISSUE_FLOOR_FLOP:.2f}x the issue's ~7 PFLOP floor**; at 790 TFLOP/s that is "
                f"{exact['total'] / ISSUE_RATE:.1f} s (the issue's ~9 s), at this device's measured bf16 rate "
                f"{exact['total'] / rates['bf16']:.1f} s. One CFG forward (batch 2) is "
                f"{fmt_flop(counts['cfg_forward'])}, i.e. {counts['cfg_forward'] / 2e12:.1f} TFLOP a batch element "
                f"(the issue assumed ~22); an optimisation pass is "
                f"{counts['optimisation_pass_ckpt_off'] / (counts['cfg_forward'] / 2):.2f} batch-1 forwards "
                f"({counts['optimisation_pass_ckpt_on'] / (counts['cfg_forward'] / 2):.2f} with checkpointing; "
                f"the issue assumed ~3)."
            )


def report(args, device, runs, flops, meta, rates, equality, build_info) -> str:
    cuda = device.type == "cuda"
    lines = []
    add = lines.append
    title = "SG-I2V guided sampler on SVD: time and memory by phase"
    add(f"# {title}{' (TINY CPU demonstration, not SVD size)' if args.tiny else ''}\n")
    add(f"- device: {device_name(device)}")
    add(f"- versions: {versions()}")
    add(f"- command: `{args.command}`")
    add(f"- models: {build_info}")
    add(
        "- timing: "
        + (
            "CUDA events per phase segment; peak = torch.cuda.max_memory_allocated after "
            "reset_peak_memory_stats at each phase start (includes resident weights); GB = 10^9 bytes"
            if cuda
            else "time.perf_counter per phase (no CUDA: no allocator statistics, memory n/a)"
        )
    )
    add(
        f"- warm-up: {'none' if args.no_warmup else 'one short run (2 steps, 1 optimised step of 1 iteration) each'}; "
        f"best of {args.repeats} by total time\n"
    )

    add("## Runs\n")
    add("| run | preset | setting | UNet precision | grad ckpt | VAE + encoder offloaded |")
    add("|---|---|---|---|---|---|")
    for run in runs:
        if run.way == "reference":
            autocast = dtype_name(run.autocast_dtype)
            precision = f"{dtype_name(run.storage_dtype)}; fp32 + autocast({autocast}) when optimising"
        else:
            precision = f"{dtype_name(run.storage_dtype)} throughout"
        add(
            f"| {run.name} | {run.preset} | {describe(run.config)} | {precision} | "
            f"{'on' if run.checkpointing else 'off'} | {'yes' if run.offload else 'no'} |"
        )

    add("\n## Time and peak memory by phase\n")
    add("| run | phase | calls | time (ms) | ms per unit | peak allocated (GB) |")
    add("|---|---|---|---|---|---|")
    for run in runs:
        rows = run.result["phases"]
        for phase in PHASES:
            if phase not in rows:
                continue
            row = rows[phase]
            unit = {"denoising steps (CFG)": "step", "optimisation iterations": "iteration"}.get(phase, "call")
            add(
                f"| {run.name} | {phase} | {row['units']} | {fmt_ms(row['ms'])} | "
                f"{fmt_ms(row['ms'] / row['units'])} / {unit} | {fmt_gb(row['peak_gb'])} |"
            )
        total = rows["total"]
        add(f"| {run.name} | **total** | | **{fmt_ms(total['ms'])}** | | **{fmt_gb(total['peak_gb'])}** |")

    add("\n## Summary\n")
    reference_runs = {r.preset: r for r in runs if r.way == "reference"}
    add(
        "| run | total (s) | peak allocated (GB) | peak reserved (GB) | run FLOP | achieved TFLOP/s | "
        "of measured bf16 matmul rate | speed-up vs the reference way | loss: first -> last optimised step |"
    )
    add("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        total = run.result["phases"]["total"]
        seconds = total["ms"] / 1e3
        flop = run.result.get("flops", {}).get("total")
        achieved = flop / seconds if flop else None
        fraction = f"{achieved / rates['bf16']:.2%}" if achieved and rates.get("bf16") else "n/a"
        achieved_text = f"{achieved / 1e12:.3g}" if achieved else "n/a"
        base = reference_runs.get(run.preset)
        speedup = (
            f"{base.result['phases']['total']['ms'] / total['ms']:.2f}x" if base is not None and base is not run else ""
        )
        losses = run.result["losses"]
        loss_text = f"{losses[0][0]:.4g} -> {losses[-1][-1]:.4g}" if losses else "n/a"
        if not run.result["finite"]:
            loss_text += " (NON-FINITE values in the run)"
        add(
            f"| {run.name} | {seconds:.2f} | {fmt_gb(total['peak_gb'])} | {fmt_gb(total['reserved_gb'])} | "
            f"{fmt_flop(flop) if flop else 'n/a'} | {achieved_text} | {fraction} | "
            f"{speedup} | {loss_text} |"
        )

    add("\n## FLOPs\n")
    if not flops and not meta:
        add("(skipped)")
    else:
        flops_section(add, args, cuda, flops, meta, rates)
    add(
        f"\nMeasured matmul rate ({args.matmul_size}^3): bf16 {rates['bf16'] / 1e12:.3g} TFLOP/s"
        + (f", {dtype_name(rates['dtype'])} {rates['ours'] / 1e12:.3g} TFLOP/s" if "ours" in rates else "")
        + "."
    )

    add("\n## Equality: our way vs the reference way, one optimisation pass on the same latent\n")
    if equality:
        add(
            f"Tolerance (half precision, {dtype_name(args.half)}): "
            f"features {args.tolerance:g}, loss {args.tolerance:g} "
            "(max |ours - reference| / max |reference|).\n"
        )
        add(
            "| our way | features: max rel. difference | loss (ours / reference) | loss: rel. difference | "
            "AdamW step signs agreeing | within tolerance |"
        )
        add("|---|---|---|---|---|---|")
        for mode, r in equality.items():
            ok = r["features"] <= args.tolerance and r["loss"] <= args.tolerance
            add(
                f"| {dtype_name(args.half)}, {mode} | {r['features']:.2e} | "
                f"{r['loss_ours']:.6g} / {r['loss_reference']:.6g} | "
                f"{r['loss']:.2e} | {r['step_sign_agreement']:.1%} | {'yes' if ok else 'NO'} |"
            )
    else:
        add("(skipped)")

    if cuda and not args.tiny:
        add("\n## Targets (issue 5)\n")
        add("| target | measured | met |")
        add("|---|---|---|")
        by_key = defaultdict(list)
        for run in runs:
            by_key[(run.preset, run.way)].append(run)

        def best(preset, way):
            candidates = by_key.get((preset, way), [])
            return min(candidates, key=lambda r: r.result["phases"]["total"]["ms"]) if candidates else None

        def check(label, run, seconds_max, gb_max):
            if run is None:
                return
            total = run.result["phases"]["total"]
            met = total["ms"] / 1e3 <= seconds_max and total["peak_gb"] <= gb_max
            add(
                f"| {label}: <= {seconds_max} s, <= {gb_max} GB | {run.name}: {total['ms'] / 1e3:.1f} s, "
                f"{total['peak_gb']:.1f} GB | {'yes' if met else 'no'} |"
            )

        check("reference setting, our way", best("reference", "ours"), 30, 16)
        check("lite preset", best("lite", "ours"), 10, 10)
        ours, ref = best("reference", "ours"), best("reference", "reference")
        if ours is not None and ref is not None:
            ratio = ref.result["phases"]["total"]["ms"] / ours.result["phases"]["total"]["ms"]
            add(f"| our way >= 1.5x faster than the reference way | {ratio:.2f}x | {'yes' if ratio >= 1.5 else 'no'} |")
        if equality:
            ok = all(r["features"] <= args.tolerance and r["loss"] <= args.tolerance for r in equality.values())
            add(f"| features and loss equal within half-precision tolerance | see above | {'yes' if ok else 'no'} |")
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny configs and sizes (CPU demonstration)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument(
        "--dtype",
        choices=["fp16", "bf16"],
        default=None,
        help="our way's precision (default fp16 on CUDA, bf16 on a CPU, where fp16 kernels are slow)",
    )
    parser.add_argument("--runs", default="ref-ref,ref-ours,lite-ours", help=f"comma list of {', '.join(RUNS)}")
    parser.add_argument(
        "--checkpointing",
        choices=["both", "on", "off"],
        default="both",
        help="our way's gradient checkpointing (the reference way always uses it)",
    )
    parser.add_argument(
        "--no-offload", action="store_true", help="our way keeps the VAE and image encoder on the device"
    )
    parser.add_argument("--size", default=None, help="HxW override for every run, e.g. 320x576 (multiples of 64)")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (the optimised window scales along)")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per configuration, the fastest reported")
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--no-flops", action="store_true", help="skip FLOP counting on the device")
    parser.add_argument("--no-meta-flops", action="store_true", help="skip the full-size count on the meta device")
    parser.add_argument("--no-equality", action="store_true")
    parser.add_argument(
        "--tolerance", type=float, default=None, help="equality tolerance (default 2e-2 for fp16, 6e-2 for bf16)"
    )
    parser.add_argument("--matmul-size", type=int, default=None, help="default 8192 on CUDA, 1024 on a CPU")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: 1 with --tiny on a CPU, where per-op overhead dominates and "
        "several threads on a shared machine stall at every OpenMP barrier; else torch's)",
    )
    parser.add_argument("--image", default=str(ROOT / "data/examples/shapes.png"))
    parser.add_argument("--tracks", default=str(ROOT / "data/examples/shapes.json"))
    parser.add_argument("--out", default=None, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    args.command = "python benchmarks/gpu_svd.py" + "".join(" " + a for a in (sys.argv[1:] if argv is None else argv))
    return args


def run_config(args, preset: str, checkpointing: bool) -> SGI2VConfig:
    config = get_preset(preset).replace(gradient_checkpointing=checkpointing)
    if args.tiny:
        height, width = TINY_SIZES[preset]
        config = config.replace(height=height, width=width, num_frames=TINY_FRAMES, decode_chunk_size=TINY_CHUNK)
        steps, iterations = TINY_STEPS, TINY_ITERATIONS
        config = config.replace(
            num_inference_steps=steps, optimised_steps=scaled_steps(5, 20, 50, steps), iterations=iterations
        )
    if args.size:
        height, width = (int(v) for v in args.size.lower().split("x"))
        config = config.replace(height=height, width=width)
    if args.frames:
        config = config.replace(num_frames=args.frames)
    if args.steps:
        config = config.replace(num_inference_steps=args.steps, optimised_steps=scaled_steps(5, 20, 50, args.steps))
    if args.iterations is not None:
        config = config.replace(iterations=args.iterations)
    return config


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_libraries()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    if args.threads or (args.tiny and not cuda):
        torch.set_num_threads(args.threads or 1)
    if cuda:
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    args.half = DTYPES[args.dtype or ("fp16" if cuda else "bf16")]
    # The reference way stores the UNet in fp16 and optimises under fp16 autocast. On a CPU, whose
    # fp16 kernels are slow, the chosen half dtype (bf16) stands in for fp16 in both places, and the
    # VAE and image encoder stay in fp32 (on CUDA they are fp16, as SVD's fp16 pipeline).
    ref_dtype = torch.float16 if cuda else args.half
    encoder_dtype = torch.float16 if cuda else torch.float32
    args.tolerance = args.tolerance or (2e-2 if args.half == torch.float16 else 6e-2)
    args.matmul_size = args.matmul_size or (8192 if cuda else 1024)

    from PIL import Image

    image = Image.open(args.image)
    tracks = load_tracks(args.tracks)

    # --- the runs
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.checkpointing]
    runs = []
    for key in args.runs.split(","):
        preset, way = RUNS[key.strip()]
        if way == "reference":
            runs.append(Run(key, f"{preset}, reference way", preset, way, True, ref_dtype, ref_dtype, True))
        else:
            for ck in modes:
                runs.append(
                    Run(
                        key,
                        f"{preset}, our way (ckpt {'on' if ck else 'off'})",
                        preset,
                        way,
                        ck,
                        args.half,
                        None,
                        not args.no_offload,
                    )
                )
    runs.sort(key=lambda r: r.storage_dtype != ref_dtype)  # fp16 runs first: one cast to bf16 at most

    # --- models, built on the device
    started = time.perf_counter()
    pipe = build_svd(device, ref_dtype, tiny=args.tiny, encoder_dtype=encoder_dtype)
    if cuda:
        torch.cuda.synchronize()
    build_seconds = time.perf_counter() - started
    build_info = (
        f"{'tiny configs of SVD architecture' if args.tiny else 'SVD published configs'}, random weights, built on "
        f"{device.type} in {build_seconds:.1f} s: UNet {parameter_count(pipe.unet):.4g} B, VAE "
        f"{parameter_count(pipe.vae):.4g} B, image encoder {parameter_count(pipe.image_encoder):.4g} B parameters"
    )
    log(f"built the models in {build_seconds:.1f} s on {device}")
    for run in runs:
        run.config = resolve_config(pipe, run_config(args, run.preset, run.checkpointing))

    # --- equality (UNet in fp16, before any cast to bf16)
    equality = None
    if not args.no_equality:
        ref_like = next((r.config for r in runs if r.preset == "reference"), runs[0].config)
        equality = equality_check(pipe, ref_like, image, tracks, device, args.half, ref_dtype, modes)
        log(f"equality check: {equality}")

    # --- timed runs
    for run in runs:
        best = None
        for attempt in range(args.repeats + (0 if args.no_warmup else 1)):
            warmup = attempt == 0 and not args.no_warmup
            reset_components(pipe, run, device)
            timer = PhaseTimer(device)
            outcome = guided_run(
                pipe, run, short_config(run.config) if warmup else run.config, image, tracks, device, timer
            )
            if warmup:
                continue
            phases = timer.summary()
            if best is None or phases["total"]["ms"] < best[0]["total"]["ms"]:
                best = (phases, outcome)
        phases, outcome = best
        finite = bool(torch.isfinite(outcome["latents"]).all()) and all(
            math.isfinite(v) for step in outcome["losses"] for v in step
        )
        run.result = dict(phases=phases, losses=outcome["losses"], finite=finite)
        log(f"{run.name}: {phases['total']['ms'] / 1e3:.2f} s, peak {fmt_gb(phases['total']['peak_gb'])} GB")
    pipe.image_encoder.to(device)
    pipe.vae.to(device)

    # --- FLOPs: on the device (each preset at its run size), and full size on the meta device
    flops = {}
    if not args.no_flops:
        for run in runs:
            if run.preset in flops:
                continue
            pipe.unet.to(run.storage_dtype)
            ck_modes = (False, True)
            flops[run.preset] = (run.config, measured_flops(pipe, run.config, image, tracks, device, ck_modes))
        for run in runs:
            run.result["flops"] = run_flops(flops[run.preset][1], run.config, run.checkpointing)
        log("counted FLOPs on the device")
    meta = {}
    if not args.no_meta_flops:
        meta_pipe = build_svd(torch.device("meta"), torch.float16, tiny=False)
        for preset in dict.fromkeys(r.preset for r in runs):
            config = resolve_config(meta_pipe, get_preset(preset))
            meta[preset] = (config, meta_flops(meta_pipe, config))
        del meta_pipe
        log("counted FLOPs at full size on the meta device")
    rates = {"bf16": matmul_rate(device, torch.bfloat16, args.matmul_size, 50 if cuda else 3)}
    if cuda and args.half != torch.bfloat16:
        rates["ours"], rates["dtype"] = matmul_rate(device, args.half, args.matmul_size, 50 if cuda else 3), args.half

    log("measured the matmul rate")
    text = report(args, device, runs, flops, meta, rates, equality, build_info)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return dict(
        runs=runs, flops=flops, meta=meta, rates=rates, equality=equality, markdown=text, tolerance=args.tolerance
    )


if __name__ == "__main__":
    main()
