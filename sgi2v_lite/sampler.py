"""The guided sampler: SVD's Euler sampling loop with SG-I2V's latent optimisation (spec steps 1-6).

    generate(pipe, image, tracks, config)       one call: image + tracks -> frames
      1-4. prepare: sizes and input checks; encode_conditioning (CLIP embedding, VAE latent of the
           noise-augmented image, time ids); boxes on the latent grid; initial noise, SVD's schedule
      5.   sample: for each denoising step i
               guidance_step   if i is optimised: AdamW on the latent (optimise_latent, whose loss
                               reads conditional_features), then the frequency mix (Sec. 3.4)
               denoise_step    the UNet on the CFG batch (noise_prediction), the scheduler's step
               callback(info)  the step's intermediates, for notebooks to show
      6.   decode in chunks -> uint8 frames (F, H, W, 3)

Like k-diffusion's samplers these are plain functions of the model's components. They are the one
path: the notebooks, the probe and the benchmarks call them (the benchmarks time them through the
`phase` argument) rather than writing their own loop.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .attention import default_feature_layers, record_features, run_to_features
from .config import SGI2VConfig
from .errors import InputError
from .frequency import mix_frequencies
from .loss import box_loss, feature_map, has_targets
from .memory import gradient_checkpointing, offloaded
from .tracks import Tracks, boxes_to_grid


@dataclass
class Conditioning:
    """SVD's conditioning for one image, batched [unconditional, conditional] when CFG is on.

    image_embeddings: (B, 1, D)         CLIP image embedding (zeros for the unconditional half)
    image_latents:    (B, F, C, h, w)   VAE latent of the noise-augmented image, repeated per frame
    added_time_ids:   (B, 3)            fps - 1, motion bucket id, noise augmentation strength
    """

    image_embeddings: torch.Tensor
    image_latents: torch.Tensor
    added_time_ids: torch.Tensor

    def conditional(self) -> Conditioning:
        """The conditional batch element alone (the last one), as the optimisation uses."""
        return Conditioning(self.image_embeddings[-1:], self.image_latents[-1:], self.added_time_ids[-1:])


@dataclass
class GenerationResult:
    frames: np.ndarray  # (F, H, W, 3) uint8
    boxes_px: np.ndarray  # (N, F, 4) boxes in pixels of the generated frames
    latents: torch.Tensor  # (1, F, C, h, w) final latent
    config: SGI2VConfig


def resolve_config(pipe, config: SGI2VConfig) -> SGI2VConfig:
    """Fill the model-dependent `None`s of a config (size, frames, layers) from the pipeline."""
    unet = pipe.unet
    size = unet.config.sample_size * pipe.vae_scale_factor
    config = config.replace(
        height=config.height or size,
        width=config.width or size,
        num_frames=config.num_frames or unet.config.num_frames,
        feature_layers=tuple(config.feature_layers or default_feature_layers(unet)),
    )
    config.validate(size_multiple=pipe.vae_scale_factor * 2 ** (len(unet.down_blocks) - 1))
    return config


def image_to_tensor(image) -> torch.Tensor:
    """PIL image -> (1, 3, H, W) float in [-1, 1], at its own size."""
    array = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1)  # (H, W, 3)
    return array.permute(2, 0, 1)[None]


@torch.no_grad()
def clip_embedding(pipe, image: torch.Tensor) -> torch.Tensor:
    """SVD's CLIP image embedding (1, 1, D) of an image (1, 3, H, W) in [-1, 1], preprocessed as
    diffusers' `StableVideoDiffusionPipeline` does: Gaussian-blurred and resized to the encoder's
    input size (224 px for SVD's ViT-H/14) by diffusers' own antialiasing resize, then normalised
    by the pipeline's CLIP feature extractor."""
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
        _resize_with_antialiasing,  # the pipeline's own resize: no copy of it here
    )

    size = pipe.image_encoder.config.image_size
    resized = (_resize_with_antialiasing(image.float(), (size, size)) + 1) / 2  # (1, 3, size, size) in ~[0, 1]
    pixels = pipe.feature_extractor(
        images=resized, do_normalize=True, do_center_crop=False, do_resize=False, do_rescale=False, return_tensors="pt"
    ).pixel_values
    pixels = pixels.to(pipe.image_encoder.device, pipe.image_encoder.dtype)
    return pipe.image_encoder(pixels).image_embeds[:, None]  # (1, 1, D)


@torch.no_grad()
def encode_conditioning(
    pipe, image, config: SGI2VConfig, generator: torch.Generator, clip_image: torch.Tensor | None = None
) -> Conditioning:
    """Step 2: SVD's conditioning, exactly as diffusers' `StableVideoDiffusionPipeline` computes it.

    image: a PIL image of any size, or a tensor (1, 3, H, W) in [-1, 1] already at the generation
    size. The CLIP branch sees the image at its *own* size (diffusers resizes it straight to the
    encoder's input; pass `clip_image` to give it another one); the VAE branch sees it resized to
    the generation size with Gaussian noise of std noise_aug_strength (drawn from `generator`)."""
    device, unet_dtype = pipe.unet.device, pipe.unet.dtype
    do_cfg = config.max_guidance_scale > 1
    if not isinstance(image, torch.Tensor):
        clip_image = image_to_tensor(image) if clip_image is None else clip_image
        # diffusers' own resize (PIL, Lanczos) and scaling to [-1, 1]: (1, 3, H, W) float32
        image = pipe.video_processor.preprocess(image.convert("RGB"), height=config.height, width=config.width)
    image_embeddings = clip_embedding(pipe, image if clip_image is None else clip_image).to(unet_dtype)

    # VAE latent of the noise-augmented image (not scaled by the VAE's scaling factor, as in SVD)
    noise = torch.randn(image.shape, generator=generator)
    noisy_image = (image + config.noise_aug_strength * noise).to(device)
    vae_dtype = pipe.vae.dtype
    upcast = vae_dtype == torch.float16 and pipe.vae.config.force_upcast
    vae = pipe.vae.to(torch.float32) if upcast else pipe.vae
    image_latent = vae.encode(noisy_image.to(vae.dtype)).latent_dist.mode()  # (1, C, h, w)
    if upcast:
        pipe.vae.to(vae_dtype)
    image_latents = image_latent.to(unet_dtype)[:, None].repeat(1, config.num_frames, 1, 1, 1)  # (1, F, C, h, w)

    added_time_ids = torch.tensor(
        [[config.fps - 1, config.motion_bucket_id, config.noise_aug_strength]], dtype=unet_dtype, device=device
    )
    if do_cfg:  # unconditional half first, as in diffusers
        image_embeddings = torch.cat([torch.zeros_like(image_embeddings), image_embeddings])
        image_latents = torch.cat([torch.zeros_like(image_latents), image_latents])
        added_time_ids = torch.cat([added_time_ids, added_time_ids])
    return Conditioning(image_embeddings, image_latents, added_time_ids)


def unet_input(scheduler, latents: torch.Tensor, timestep, cond: Conditioning, dtype) -> torch.Tensor:
    """(B, F, 2C, h, w): the scaled noisy latent (repeated for CFG) beside the image latent."""
    repeat = cond.image_latents.shape[0] // latents.shape[0]
    scaled = scheduler.scale_model_input(latents, timestep).to(dtype)
    return torch.cat([scaled.repeat(repeat, 1, 1, 1, 1), cond.image_latents], dim=2)


def step_learning_rate(config: SGI2VConfig, sigma: float | None) -> float:
    """AdamW's learning rate at an optimised step of noise level `sigma`: `learning_rate` itself
    (the paper, spec step 3) or, with `learning_rate_scaling="sigma"`, learning_rate x sigma, so
    that a step moves the latent by the same fraction of its noise level at every step."""
    if config.learning_rate_scaling == "constant":
        return config.learning_rate
    if sigma is None:
        raise ValueError("learning_rate_scaling='sigma' needs the step's sigma (scheduler.sigmas[step])")
    return config.learning_rate * sigma


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every element is finite. A fake tensor (`torch._subclasses.FakeTensorMode`, as the
    memory model in benchmarks/gpu_memory.py runs the sampler) holds no values: it counts as finite."""
    from torch._subclasses.fake_tensor import is_fake

    return is_fake(tensor) or bool(torch.isfinite(tensor).all())


def scalar(tensor: torch.Tensor) -> float:
    """A one-element tensor's value as a float (NaN for a fake tensor, which holds none)."""
    from torch._subclasses.fake_tensor import is_fake

    return float("nan") if is_fake(tensor) else tensor.item()


class LossScaler:
    """Dynamic loss scaling for a backward pass through a float16 UNet (Micikevicius et al., "Mixed
    precision training", 2018; the rule of `torch.amp.GradScaler`, as the reference uses it).

    The loss is normalised over thousands of cells and 1,280 channels, so the gradient reaching the
    recorded features is ~1e-7 an element: below float16's normal range (6e-5), where it rounds to
    zero. Multiplying the loss by `scale` before backward lifts every gradient into range; the
    float32 variable's gradient is divided back exactly (a power of two). If the scaled backward
    overflows (inf or NaN), the scale halves and the pass is redone, so every AdamW iteration gets a
    gradient (GradScaler would skip the step instead). One scaler serves a whole generation, so a
    scale found too large is lowered once. Models in float32 or bfloat16 (float32's range) need no
    scaling: scale 1.

    The first scale is 2^24, not GradScaler's 2^16: on the toy model at 2^16 a few latent elements
    whose float32 gradient is non-zero still came out zero; from 2^20 none did, and nothing
    overflowed up to 2^32 (measured in tests/test_fp16.py)."""

    def __init__(self, dtype: torch.dtype, initial_scale: float = 2.0**24):
        self.scale = initial_scale if dtype == torch.float16 else 1.0

    def backward(self, closure: Callable[[], tuple[torch.Tensor, dict]], variable: torch.Tensor):
        """Run `closure()` -> (loss, extras), backward the scaled loss into `variable.grad` and
        unscale it. Returns (loss, extras, ok): ok is False, and the gradient None, when no scale
        down to 1 gives a finite gradient (or the loss itself is not finite): skip that step."""
        while True:
            variable.grad = None
            loss, extras = closure()
            if not all_finite(loss):
                return loss, extras, False
            (loss * self.scale).backward()
            if all_finite(variable.grad):
                variable.grad.div_(self.scale)
                return loss, extras, True
            if self.scale <= 1:
                variable.grad = None
                return loss, extras, False
            self.scale /= 2


def compute_dtype(unet) -> torch.dtype:
    """The dtype the UNet computes in: its own, or the autocast dtype inside `torch.autocast` (the
    reference way runs an fp32 UNet under fp16 autocast: its backward needs loss scaling too)."""
    device_type = unet.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return unet.dtype


def conditional_features(unet, recorder, scheduler, latents, timestep, cond: Conditioning) -> dict[str, torch.Tensor]:
    """The features `recorder` records (layer -> (F, C, h, w)) for latent z_t (1, F, C, h, w) at
    `timestep`: one UNet forward on the conditional half only (the loss needs no CFG), stopped after
    the last hooked block when the recorder was made with `stop_early` (Sec. 3.3: the rest of the
    UNet does not reach the loss). Differentiable in `latents`."""
    conditional = cond.conditional()
    return run_to_features(
        unet,
        recorder,
        unet_input(scheduler, latents, timestep, conditional, unet.dtype),
        timestep,
        encoder_hidden_states=conditional.image_embeddings,
        added_time_ids=conditional.added_time_ids,
    )


def guidance_loss(unet, recorder, scheduler, latents, timestep, cond: Conditioning, box_cells, valid, config):
    """One forward of the optimisation: the box loss (a float32 scalar, Eq. 4) of latent z_t
    (1, F, C, h, w) and the recorded features (`conditional_features`)."""
    features = conditional_features(unet, recorder, scheduler, latents, timestep, cond)
    loss = box_loss(feature_map(features, tuple(latents.shape[-2:])), box_cells, valid, config.heatmap_sigma)
    return loss, features


def optimise_latent(
    unet,
    scheduler,
    latents: torch.Tensor,
    timestep,
    cond: Conditioning,
    box_cells: np.ndarray,
    valid: np.ndarray,
    config: SGI2VConfig,
    sigma: float | None = None,
    scaler: LossScaler | None = None,
) -> tuple[torch.Tensor, list[float], dict[str, torch.Tensor]]:
    """Spec step 3: AdamW on the scheduler's own noisy latent z_t (before `scale_model_input`).

    latents: (1, F, C, h, w) at noise level `sigma`. A fresh optimiser, `config.iterations`
    iterations, each a forward pass (`guidance_loss`) and a backward pass to the latent. The latent
    and the optimiser stay float32 whatever the UNet's dtype; a float16 UNet's backward is loss-
    scaled by `scaler` (a fresh `LossScaler` if None; `sample` passes one for the whole run).
    With `optimise_first_frame` off only frames 1..F-1 are variables. With no box to follow (no
    track has a valid frame j >= 1) the loss is constant and no optimiser step is taken, as in the
    reference (AdamW's weight decay would still shrink the latent).
    Returns (optimised latent, loss per iteration, features of the last iteration)."""
    first = 0 if config.optimise_first_frame else 1
    fixed = latents[:, :first].detach().float()  # (1, 0 or 1, C, h, w)
    variable = latents[:, first:].detach().float().clone().requires_grad_(True)
    optimiser = torch.optim.AdamW([variable], lr=step_learning_rate(config, sigma), weight_decay=config.weight_decay)
    scaler = scaler or LossScaler(compute_dtype(unet))
    followed = has_targets(valid)
    losses, features = [], {}
    with (
        gradient_checkpointing(unet, config.gradient_checkpointing),
        record_features(
            unet,
            config.feature_layers,
            num_frames=latents.shape[1],
            latent_hw=tuple(latents.shape[-2:]),
            kind=config.feature_kind,
            stop_early=config.truncate_forward,
        ) as recorder,
    ):
        for _ in range(config.iterations):

            def closure():
                z = torch.cat([fixed, variable], dim=1)
                return guidance_loss(unet, recorder, scheduler, z, timestep, cond, box_cells, valid, config)

            # keep recording during backward: gradient checkpointing re-runs the hooked layers and
            # must see the same computation (the extra aligned attention) as the forward did
            loss, features, ok = scaler.backward(closure, variable)
            if followed and ok:
                optimiser.step()
            losses.append(scalar(loss))
    features = {name: f.detach() for name, f in features.items()}
    return torch.cat([fixed, variable.detach()], dim=1).to(latents.dtype), losses, features


def latent_gradient(unet, scheduler, latents, timestep, cond: Conditioning, box_cells, valid, config, loss_scale=None):
    """The gradient (1, F, C, h, w), float32, of the box loss with respect to latent z_t: one pass
    of `optimise_latent`'s forward and backward, loss-scaled as it is (`loss_scale` overrides the
    initial scale, e.g. 1.0 to see what float16 loses without scaling). Returns (loss, gradient)."""
    variable = latents.detach().float().clone().requires_grad_(True)
    scaler = LossScaler(compute_dtype(unet)) if loss_scale is None else LossScaler(torch.float16, loss_scale)
    layers, frames, latent_hw = config.feature_layers, latents.shape[1], tuple(latents.shape[-2:])
    with (
        gradient_checkpointing(unet, config.gradient_checkpointing),
        record_features(unet, layers, frames, latent_hw, config.feature_kind, config.truncate_forward) as recorder,
    ):

        def closure():
            return guidance_loss(unet, recorder, scheduler, variable, timestep, cond, box_cells, valid, config)

        loss, _, ok = scaler.backward(closure, variable)
    gradient = variable.grad if ok else torch.zeros_like(variable)
    return loss.detach(), gradient


def check_weight_decay(config: SGI2VConfig, scheduler, optimised_steps) -> None:
    """AdamW's decoupled decay multiplies the latent by (1 - lr x weight_decay) each iteration. At
    1 or more it zeroes or flips the latent (a sigma-scaled rate reaches that at large sigma):
    refuse, naming the first such step, rather than return a silently wrong video."""
    if config.iterations == 0:  # nothing is optimised
        return
    for step in sorted(optimised_steps):
        sigma = float(scheduler.sigmas[step])
        lr = step_learning_rate(config, sigma)
        if lr * config.weight_decay >= 1:
            raise InputError(
                f"optimised step {step} (sigma {sigma:.1f}): learning rate {lr:.3g} x weight_decay "
                f"{config.weight_decay} = {lr * config.weight_decay:.2f} >= 1, so AdamW's decay would zero or "
                "flip the latent; lower 'learning_rate' or 'weight_decay'"
            )


def guidance_scales(config: SGI2VConfig, device, dtype) -> torch.Tensor:
    """Per-frame CFG scale (1, F, 1, 1, 1), linear from min (frame 0) to max (last frame)."""
    scales = torch.linspace(config.min_guidance_scale, config.max_guidance_scale, config.num_frames)
    return scales.view(1, -1, 1, 1, 1).to(device, dtype)


def no_phase(name: str) -> ContextManager:
    """The default `phase` of `sample` and `generate`: nothing around any part of a step. A
    benchmark passes its timer instead (e.g. benchmarks/gpu_svd.py: `timer.phase`)."""
    return nullcontext()


def guidance_step(
    unet,
    scheduler,
    latents: torch.Tensor,
    timestep,
    sigma: float,
    cond: Conditioning,
    box_cells: np.ndarray,
    valid: np.ndarray,
    config: SGI2VConfig,
    scaler: LossScaler | None = None,
    phase: Callable[[str], ContextManager] = no_phase,
) -> tuple[torch.Tensor, dict]:
    """SG-I2V at one optimised step (spec steps 3-4): `config.iterations` AdamW iterations on the
    latent z_t (1, F, C, h, w) at noise level `sigma` (`optimise_latent`), then the frequency mix
    (Sec. 3.4: the optimised latent's low frequencies with the original's high ones).
    Returns (the latent to denoise, info): info has "latents_optimised" (before the mix),
    "latents_mixed", "losses" (per iteration), "features" (of the last iteration) and
    "loss_scale" (1 unless the UNet is float16)."""
    scaler = scaler or LossScaler(compute_dtype(unet))
    with phase("optimisation"), torch.enable_grad():
        optimised, losses, features = optimise_latent(
            unet, scheduler, latents, timestep, cond, box_cells, valid, config, sigma, scaler
        )
    mixed = optimised
    if config.frequency_mix:
        with phase("frequency mix"):
            mixed = mix_frequencies(optimised, latents, config.lowpass_cutoff, config.lowpass_order)
    info = dict(latents_optimised=optimised, latents_mixed=mixed, losses=losses, features=features)
    return mixed, info | {"loss_scale": scaler.scale}


@torch.no_grad()
def noise_prediction(unet, scheduler, latents: torch.Tensor, timestep, cond: Conditioning, scales: torch.Tensor):
    """The UNet's noise prediction for latent z_t (1, F, C, h, w), as diffusers' pipeline makes it:
    one forward on the [unconditional, conditional] batch, combined per frame with the CFG `scales`
    (1, F, 1, 1, 1): uncond + scale x (cond - uncond). Without CFG, the conditional prediction."""
    model_input = unet_input(scheduler, latents, timestep, cond, unet.dtype)  # (B, F, 2C, h, w)
    noise_pred = unet(
        model_input, timestep, encoder_hidden_states=cond.image_embeddings, added_time_ids=cond.added_time_ids
    ).sample
    if cond.image_latents.shape[0] == 2:  # CFG: unconditional + scale x (conditional - unconditional)
        uncond, conditional = noise_pred.chunk(2)
        noise_pred = uncond + scales * (conditional - uncond)
    return noise_pred


@torch.no_grad()
def denoise_step(unet, scheduler, latents: torch.Tensor, timestep, cond: Conditioning, scales: torch.Tensor):
    """One step of SVD's sampler (spec step 5): `noise_prediction`, then the Euler step.
    latents: (1, F, C, h, w) float32. Returns (the scheduler's output: `prev_sample`, the latent of
    the next step, and `pred_original_sample`, the model's x0 estimate; the guided noise prediction)."""
    noise_pred = noise_prediction(unet, scheduler, latents, timestep, cond, scales)
    return scheduler.step(noise_pred.to(latents.dtype), timestep, latents), noise_pred


def sample(
    unet,
    scheduler,
    latents: torch.Tensor,
    cond: Conditioning,
    config: SGI2VConfig,
    box_cells: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    callback: Callable[[dict], None] | None = None,
    record_step_features: bool = False,
    progress: bool = True,
    phase: Callable[[str], ContextManager] = no_phase,
) -> torch.Tensor:
    """Step 5: the denoising loop. latents: (1, F, C, h, w) scaled by the initial sigma; the
    scheduler must have its timesteps set. Returns the denoised latent.

    callback(info) gets, per step: "step", "timestep", "sigma", "latents" (z_t entering the step),
    "optimised" (bool); for optimised steps what `guidance_step` reports ("latents_optimised",
    "latents_mixed", "losses", "features", "loss_scale"); after the UNet "noise_pred", "denoised"
    (the model's x0 estimate at this step) and "latents_next"; with `record_step_features`,
    "step_features": the features recorded during the CFG pass (conditional half).
    phase(name): a context around each part of a step ("optimisation", "frequency mix", "denoising")."""
    scales = guidance_scales(config, latents.device, latents.dtype)
    optimised_steps = set(config.optimised_steps) if config.guidance and box_cells is not None else set()
    check_weight_decay(config, scheduler, optimised_steps)
    scaler = LossScaler(compute_dtype(unet))  # one for the whole run: a scale found too large is lowered once
    for step, timestep in enumerate(tqdm(scheduler.timesteps, desc="denoising", disable=not progress)):
        sigma = float(scheduler.sigmas[step])
        info = {"step": step, "timestep": timestep, "sigma": sigma, "latents": latents}
        info["optimised"] = step in optimised_steps and config.iterations > 0
        if info["optimised"]:
            latents, guided = guidance_step(
                unet, scheduler, latents, timestep, sigma, cond, box_cells, valid, config, scaler, phase
            )
            info.update(guided)

        layers, frames, latent_hw = config.feature_layers, latents.shape[1], tuple(latents.shape[-2:])
        recording = (
            record_features(unet, layers, frames, latent_hw, config.feature_kind)
            if record_step_features
            else nullcontext()
        )
        with phase("denoising"), recording as recorder:
            step_output, noise_pred = denoise_step(unet, scheduler, latents, timestep, cond, scales)
        if record_step_features:
            info["step_features"] = dict(recorder.features)
        latents = step_output.prev_sample
        info.update(noise_pred=noise_pred, denoised=step_output.pred_original_sample, latents_next=latents)
        if callback is not None:
            callback(info)
    return latents


@torch.no_grad()
def decode_to_tensor(pipe, latents: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Step 6 on the model's device: (1, F, C, h, w) latent -> (F, H, W, 3) uint8 frames, decoded
    `chunk_size` frames at a time by diffusers' `decode_latents`."""
    frames = pipe.decode_latents(latents.to(pipe.vae.dtype), latents.shape[1], chunk_size)  # (1, 3, F, H, W)
    frames = ((frames[0].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255)  # (F, H, W, 3)
    return frames.to(torch.uint8)


def decode(pipe, latents: torch.Tensor, chunk_size: int) -> np.ndarray:
    """Step 6: (1, F, C, h, w) latent -> (F, H, W, 3) uint8 frames as a NumPy array."""
    return decode_to_tensor(pipe, latents, chunk_size).cpu().numpy()


@dataclass
class Prepared:
    """Everything the denoising loop needs, from steps 1-4 of `generate` (notebooks use it to run
    one step by hand).

    config:    the resolved config (sizes, frames and layers filled in)
    cond:      SVD's conditioning (`Conditioning`)
    scheduler: a fresh Euler scheduler with its timesteps set
    latents:   (1, F, C, h, w) initial noise, scaled by the scheduler's initial sigma
    boxes_px:  (N, F, 4) boxes in pixels of the generated frames
    box_cells: (N, F, 4) the same boxes on the latent grid, and `valid` (N, F) (None without tracks)
    """

    config: SGI2VConfig
    cond: Conditioning
    scheduler: object
    latents: torch.Tensor
    boxes_px: np.ndarray
    box_cells: np.ndarray | None
    valid: np.ndarray | None

    @property
    def guided(self) -> bool:
        """Whether the loop will optimise: guidance on and at least one track."""
        return self.config.guidance

    @property
    def latent_hw(self) -> tuple[int, int]:
        return tuple(self.latents.shape[-2:])


def fresh_scheduler(pipe, num_inference_steps: int, device=None):
    """A new copy of the pipeline's scheduler with its timesteps set. Euler keeps a step counter,
    so every run (and every by-hand step in a notebook) needs its own."""
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(num_inference_steps, device=device or pipe.unet.device)
    return scheduler


def prepare(pipe, image, tracks: Tracks | None, config: SGI2VConfig) -> Prepared:
    """Steps 1-4 of `generate`: sizes, conditioning, boxes on the latent grid, initial noise."""
    # 1. sizes and inputs
    config = resolve_config(pipe, config)
    height, width, num_frames = config.height, config.width, config.num_frames
    device = pipe.unet.device
    generator = torch.Generator().manual_seed(config.seed)
    guided = config.guidance and tracks is not None and len(tracks) > 0

    # 2. conditioning
    cond = encode_conditioning(pipe, image, config, generator)

    # 3. boxes: image pixels -> generation pixels -> latent cells
    cell_px = pipe.vae_scale_factor
    latent_hw = (height // cell_px, width // cell_px)
    boxes_px = np.zeros((0, num_frames, 4))
    box_cells = valid = None
    if tracks is not None and len(tracks):
        boxes_px = tracks.rescaled((width, height)).boxes_per_frame(num_frames)  # (N, F, 4)
        box_cells, valid = boxes_to_grid(boxes_px, cell_px, latent_hw)
        if guided and not valid[:, 0].any():
            raise InputError("no track's first box overlaps the image after resizing to the generation size")

    # 4. initial noise and SVD's Euler schedule
    scheduler = fresh_scheduler(pipe, config.num_inference_steps, device)
    shape = (1, num_frames, pipe.unet.config.out_channels, *latent_hw)
    latents = torch.randn(shape, generator=generator).to(device) * scheduler.init_noise_sigma  # float32 always
    return Prepared(config.replace(guidance=guided), cond, scheduler, latents, boxes_px, box_cells, valid)


def generate(
    pipe,
    image,
    tracks: Tracks | None,
    config: SGI2VConfig,
    callback: Callable[[dict], None] | None = None,
    record_step_features: bool = False,
    progress: bool = True,
    phase: Callable[[str], ContextManager] = no_phase,
) -> GenerationResult:
    """Image (PIL) + tracks -> video. `tracks=None` or `config.guidance=False`: plain SVD.
    callback and record_step_features: see `sample`; phase(name): a context around each part of the
    run ("encode", "offload", "decode" and `sample`'s), for benchmarks to time."""
    pipe.unet.requires_grad_(False)  # gradients go to the latent only

    # 1-4. sizes, conditioning, boxes on the latent grid, initial noise
    with phase("encode"):
        run = prepare(pipe, image, tracks, config)

    # 5. denoising, with SG-I2V's optimisation at the chosen steps (with `offload`, only the UNet on the GPU)
    with offloaded([pipe.vae, pipe.image_encoder], enabled=config.offload, phase=phase):
        latents = sample(
            pipe.unet,
            run.scheduler,
            run.latents,
            run.cond,
            run.config,
            run.box_cells,
            run.valid,
            callback=callback,
            record_step_features=record_step_features,
            progress=progress,
            phase=phase,
        )

    # 6. decode (with `offload`, the UNet waits in system RAM)
    with offloaded([pipe.unet], enabled=config.offload, phase=phase), phase("decode"):
        frames = decode(pipe, latents, run.config.decode_chunk_size)
    return GenerationResult(frames=frames, boxes_px=run.boxes_px, latents=latents, config=run.config)
