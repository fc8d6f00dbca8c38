"""Train the toy-world pipeline from scratch: a real `StableVideoDiffusionPipeline` at toy size.

    python -m sgi2v_lite.toy.train --out data/toy-svd [--vae-steps N] [--unet-steps N] [--seed S]
                                   [--resume DIR] [--motion linear|varied|fast] [--layers-per-block N]
                                   [--decoder-steps N]

Stage 1, the VAE (`AutoencoderKLTemporalDecoder`, x2): reconstruction of toy clips (32 px crops:
it is convolutional) with a small KL term; its scaling factor is then set so latents have unit std.
Stage 1b (`--decoder-steps N`, 800 on a fresh run; on a finished model with `--resume DIR
--decoder-steps N`): the decoder alone on whole clips, the encoder frozen, so the latents do not
change.
Stage 2, the UNet (`UNetSpatioTemporalConditionModel`) and the image encoder
(`CLIPVisionModelWithProjection`), trained together the way SVD was: EDM preconditioning with
v-prediction (what diffusers' `EulerDiscreteScheduler` with SVD's settings inverts), log-normal
noise levels, the first frame's noise-augmented latent concatenated to the noisy latent, the CLIP
embedding for cross-attention, fps / motion bucket / noise augmentation as time ids, and
conditioning dropout (image latent and embedding zeroed together, as the unconditional half of CFG).
An exponential moving average of the UNet's weights is what gets saved.

Every clip is freshly generated (`world.make_scene`), so the model never sees a clip twice; the
evaluation uses seeds from a separate range (`EVAL_SEED_OFFSET`).

This module trains and saves; it writes no report. Every setting other than step counts, seed and
architecture is a field of `Hyperparameters`, and each sitting's log starts with a "settings" record
of them. `card.py` turns the log and the saved weights into the folder's TRAINING.md and loss curves
(`python -m sgi2v_lite.toy.card DIR`; `make toy-model` runs both). The folder's README.md, the
measured findings, is written by hand: nothing writes it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .world import MOTIONS, TOY_SIZE, make_scene

TRAIN_SEED_OFFSET = 0  # training clips use seeds 0, 1, 2, ...
EVAL_SEED_OFFSET = 10_000_000  # evaluation scenes never overlap training clips
NUM_FRAMES = 8
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LOG_NAME = "training_log.jsonl"
VAE_CHECK_SEEDS = tuple(range(EVAL_SEED_OFFSET - 1000, EVAL_SEED_OFFSET - 992))  # held-out clips: the VAE's PSNR

UNET_CONFIG = {
    "sample_size": 32,  # 64 px frames through a x2 VAE: a 32 x 32 latent
    "in_channels": 8,
    "out_channels": 4,
    # SVD's blocks, without attention at the 32 x 32 level (too slow on a CPU): the middle-resolution
    # up block, up_blocks[1] at 16 x 16, plays the role of SVD's up_blocks[2] at 36 x 64
    "down_block_types": (
        "DownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
    ),
    "up_block_types": ("CrossAttnUpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal"),
    # at least 64 channels at the top level: diffusers fixes GroupNorm at 32 groups, and with 32
    # channels the norm before the output convolution is an instance norm, which erases each
    # channel's per-frame mean (the frame's colour) so the model cannot predict it
    "block_out_channels": (64, 64, 96),
    "layers_per_block": 1,
    "cross_attention_dim": 64,
    "num_attention_heads": (4, 4, 6),
    "addition_time_embed_dim": 32,
    "projection_class_embeddings_input_dim": 96,
    "num_frames": NUM_FRAMES,
}
VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    # x2: 64 px frames to a 32 x 32 latent. 64 channels at the image end and 128 at the latent end
    # (2 and 4 channels per GroupNorm group): with 32 channels the last norms erase colour means,
    # and the VAE learns several times slower
    "down_block_types": ("DownEncoderBlock2D",) * 2,
    "block_out_channels": (64, 128),
    "layers_per_block": 1,
    "latent_channels": 4,
    "sample_size": TOY_SIZE,
}
IMAGE_ENCODER_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "projection_dim": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 4,
}


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """The training recipe apart from step counts, seed and architecture: what the stages read, and
    what `main` logs (the "settings" record) for `card.py` to report. Every stage uses AdamW with a
    linear warm-up, then a cosine down to `lr_floor` x its peak at the last step (`cosine_schedule`)."""

    batch_clips: int = 4  # clips of NUM_FRAMES frames a step, every stage
    lr_floor: float = 0.1  # the cosine's end, a fraction of the peak learning rate
    max_grad_norm: float = 1.0  # gradients clipped to this norm, every stage
    log_every: int = 25  # steps between logged losses (and the last step)
    l1_weight: float = 0.5  # reconstruction loss MSE + l1_weight x L1 (stages 1 and 1b)
    # stage 1, the VAE (on crops: it is convolutional)
    vae_lr: float = 3e-4
    vae_warmup: int = 50  # steps
    vae_weight_decay: float = 0.0  # stages 1 and 1b
    vae_crop: int = 32  # px: one random crop a batch
    kl_weight: float = 1e-4  # on the KL term per latent element: keeps the latents near unit scale
    # stage 1b, the decoder alone on whole clips
    decoder_lr: float = 1e-4
    decoder_warmup: int = 20
    # stage 2, the UNet and the image encoder together
    unet_lr: float = 5e-4
    unet_warmup: int = 100  # counted from the first step of each sitting (a resume starts a fresh optimiser)
    unet_weight_decay: float = 0.01
    ema_decay: float = 0.998  # the saved UNet is this moving average
    conditioning_dropout: float = 0.1  # share of clips with image latent and embedding zeroed (CFG's unconditional)
    sigma_log_mean: float = 0.7  # noise levels: log sigma ~ N(mean, std)
    sigma_log_std: float = 1.6
    noise_aug_log_mean: float = -3.0  # the conditioning frame's noise augmentation, log-normal as SVD's
    noise_aug_log_std: float = 0.5
    fps: int = 7  # the time id (SVD conditions on fps - 1)


HYPERPARAMETERS = Hyperparameters()  # the shipped model's recipe: `make toy-model`


def cosine_schedule(
    optimiser, peak: float, step: int, steps: int, warmup: int, floor: float, start_step: int = 0
) -> float:
    """Sets (and returns) the learning rate of `step` of `steps`: a linear warm-up over `warmup`
    steps counted from `start_step` (a resumed sitting's fresh optimiser warms up again), times a
    cosine from 1 at step 0 down to `floor` at `steps`."""
    warm = min(1, (step + 1 - start_step) / warmup)
    cosine = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / steps))
    lr = peak * warm * cosine
    for group in optimiser.param_groups:
        group["lr"] = lr
    return lr


def clip_batch(seeds, motion: str = "linear") -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh toy clips: video (B, F, 3, H, W) in [-1, 1] and motion bucket ids (B,)."""
    scenes = [make_scene(int(s), TOY_SIZE, NUM_FRAMES, motion=motion) for s in seeds]
    video = torch.from_numpy(np.stack([s.frames for s in scenes])).permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    return video, torch.tensor([s.motion_bucket_id for s in scenes], dtype=torch.float32)


def clip_encoder_input(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> CLIP-normalised (B, 3, size, size), as `sampler.clip_embedding`
    preprocesses an image (diffusers' antialiasing resize). The shipped weights were trained with
    torch's antialiased bicubic resize instead, before the sampler matched diffusers' pipeline."""
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

    x = (_resize_with_antialiasing(images, (size, size)) + 1) / 2
    return (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


class Log:
    """Losses to a JSON-lines file and stdout."""

    def __init__(self, path: Path):
        self.path = path
        self.path.write_text("")
        self.started = time.perf_counter()

    def __call__(self, **values):
        values["minutes"] = round((time.perf_counter() - self.started) / 60, 2)
        with self.path.open("a") as file:
            file.write(json.dumps(values) + "\n")
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()), flush=True)


def _logged(step: int, steps: int, hp: Hyperparameters) -> bool:
    return step % hp.log_every == 0 or step == steps - 1


def vae_loss(
    vae, frames: torch.Tensor, num_frames: int, hp: Hyperparameters = HYPERPARAMETERS
) -> tuple[torch.Tensor, dict]:
    """Reconstruction (MSE + L1) of frames (B*F, 3, h, w) through the posterior's mode, plus a
    small KL term that keeps the latents near unit scale. Decoding the mode (not a sample) is what
    SVD's pipeline does with the conditioning frame, and it trains several times faster here."""
    posterior = vae.encode(frames).latent_dist
    reconstruction = vae.decode(posterior.mode(), num_frames=num_frames).sample
    mse = F.mse_loss(reconstruction, frames)
    kl = posterior.kl().mean() / posterior.mean[0].numel()
    loss = mse + hp.l1_weight * F.l1_loss(reconstruction, frames) + hp.kl_weight * kl
    return loss, {"mse": mse.item(), "kl": kl.item()}


def train_vae(steps: int, seed: int, log: Log, hp: Hyperparameters = HYPERPARAMETERS, config=None):
    from diffusers import AutoencoderKLTemporalDecoder

    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(**(config or VAE_CONFIG))
    optimiser = torch.optim.AdamW(vae.parameters(), lr=hp.vae_lr, weight_decay=hp.vae_weight_decay)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        lr = cosine_schedule(optimiser, hp.vae_lr, step, steps, hp.vae_warmup, hp.lr_floor)
        video, _ = clip_batch(TRAIN_SEED_OFFSET + seed * 1_000_000 + step * hp.batch_clips + np.arange(hp.batch_clips))
        y, x = rng.integers(0, TOY_SIZE - hp.vae_crop + 1, 2)
        frames = video[..., y : y + hp.vae_crop, x : x + hp.vae_crop].flatten(0, 1)  # (B*F, 3, crop, crop)
        loss, parts = vae_loss(vae, frames, NUM_FRAMES, hp)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), hp.max_grad_norm)
        optimiser.step()
        if _logged(step, steps, hp):
            log(stage="vae", step=step, loss=loss.item(), lr=lr, **parts)
    vae.eval().requires_grad_(False)
    with torch.no_grad():  # scaling factor: latents of unit standard deviation, as SVD's 0.18215 does
        video, _ = clip_batch(VAE_CHECK_SEEDS)
        latents = vae.encode(video.flatten(0, 1)).latent_dist.mode()
        vae.register_to_config(scaling_factor=float(1 / latents.std()))
        reconstruction = vae.decode(latents, num_frames=NUM_FRAMES).sample
        psnr = -10 * math.log10(F.mse_loss(reconstruction, video.flatten(0, 1)).item() / 4)  # peak-to-peak 2
    log(stage="vae-done", scaling_factor=vae.config.scaling_factor, psnr_db=psnr)
    return vae


@torch.no_grad()
def psnr_by_frame(vae, seeds=VAE_CHECK_SEEDS) -> np.ndarray:
    """Held-out round-trip PSNR (dB) of each frame position, (F,): the clips of the VAE stage's check."""
    video, _ = clip_batch(seeds)  # (B, F, 3, H, W)
    latents = vae.encode(video.flatten(0, 1).to(vae.dtype)).latent_dist.mode()
    reconstruction = vae.decode(latents, num_frames=NUM_FRAMES).sample.float().clamp(-1, 1)
    mse = ((reconstruction.unflatten(0, video.shape[:2]) - video) ** 2).mean(dim=(0, 2, 3, 4))  # (F,)
    return (-10 * torch.log10(mse / 4)).numpy()  # peak-to-peak 2


def train_decoder(vae, steps: int, seed: int, log: Log, hp: Hyperparameters = HYPERPARAMETERS):
    """Stage 1b: the temporal decoder alone, on whole clips, with the encoder frozen.

    Stage 1 trains on 32 px crops, and its decoder leaves the last frames the worst (the shipped one
    before this stage: 31.2 dB at frame 0, 28.7 dB at frame 7, whose colours drift). With the
    encoder frozen the latents do not change, so this stage can also run on a finished model
    (`--resume DIR --decoder-steps N`): the UNet trained on those latents stays valid."""
    vae.float().requires_grad_(False)
    vae.decoder.train().requires_grad_(True)
    optimiser = torch.optim.AdamW(vae.decoder.parameters(), lr=hp.decoder_lr, weight_decay=hp.vae_weight_decay)
    log(stage="decoder-start", psnr_by_frame=[round(float(v), 2) for v in psnr_by_frame(vae)])
    for step in range(steps):
        lr = cosine_schedule(optimiser, hp.decoder_lr, step, steps, hp.decoder_warmup, hp.lr_floor)
        first_seed = TRAIN_SEED_OFFSET + 3_000_000 + seed * 1_000_000 + step * hp.batch_clips
        video, _ = clip_batch(first_seed + np.arange(hp.batch_clips))
        frames = video.flatten(0, 1)  # (B*F, 3, H, W), whole frames
        with torch.no_grad():
            latents = vae.encode(frames).latent_dist.mode()
        reconstruction = vae.decode(latents, num_frames=NUM_FRAMES).sample
        mse = F.mse_loss(reconstruction, frames)
        loss = mse + hp.l1_weight * F.l1_loss(reconstruction, frames)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.decoder.parameters(), hp.max_grad_norm)
        optimiser.step()
        if _logged(step, steps, hp):
            log(stage="decoder", step=step, loss=loss.item(), lr=lr, mse=mse.item())
    vae.eval().requires_grad_(False)
    log(stage="decoder-done", psnr_by_frame=[round(float(v), 2) for v in psnr_by_frame(vae)])
    return vae


def diffusion_loss(
    unet,
    image_encoder,
    vae,
    video: torch.Tensor,
    motion_bucket: torch.Tensor,
    generator: torch.Generator,
    hp: Hyperparameters = HYPERPARAMETERS,
) -> torch.Tensor:
    """SVD's training objective on a batch of clips (B, F, 3, H, W) in [-1, 1].

    EDM preconditioning with v-prediction and sigma_data = 1, the parametrisation that diffusers'
    EulerDiscreteScheduler (prediction_type "v_prediction", timestep_type "continuous") inverts:
    x0 = c_skip * x_sigma + c_out * F(c_in * x_sigma, 0.25 log sigma), with
    c_in = 1/sqrt(sigma^2+1), c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1)."""
    batch, frames = video.shape[:2]
    scaling = vae.config.scaling_factor
    # noise augmentation of the conditioning frame: log-normal strength, as SVD
    noise_aug = torch.exp(hp.noise_aug_log_mean + hp.noise_aug_log_std * torch.randn(batch, generator=generator))
    first = video[:, 0]
    with torch.no_grad():
        clean_latents = vae.encode(video.flatten(0, 1)).latent_dist.mode().unflatten(0, (batch, frames)) * scaling
        noisy_first = first + noise_aug.view(-1, 1, 1, 1) * torch.randn(first.shape, generator=generator)
        image_latent = vae.encode(noisy_first).latent_dist.mode()  # unscaled, as SVD's pipeline
    embeddings = image_encoder(clip_encoder_input(first, image_encoder.config.image_size)).image_embeds[:, None]
    # conditioning dropout: the unconditional half of CFG sees zeros for both
    keep = (torch.rand(batch, generator=generator) > hp.conditioning_dropout).float()
    embeddings = embeddings * keep.view(-1, 1, 1)
    image_latents = (image_latent * keep.view(-1, 1, 1, 1))[:, None].repeat(1, frames, 1, 1, 1)
    fps_id = torch.full((batch,), float(hp.fps - 1))  # SVD conditions on fps - 1
    time_ids = torch.stack([fps_id, motion_bucket, noise_aug], dim=1)

    log_sigma = hp.sigma_log_mean + hp.sigma_log_std * torch.randn(batch, generator=generator)
    sigma = torch.exp(log_sigma).view(-1, 1, 1, 1, 1)
    noisy = clean_latents + sigma * torch.randn(clean_latents.shape, generator=generator)
    c_in, c_skip, c_out = 1 / (sigma**2 + 1).sqrt(), 1 / (sigma**2 + 1), -sigma / (sigma**2 + 1).sqrt()
    model_input = torch.cat([noisy * c_in, image_latents], dim=2)
    prediction = unet(model_input, 0.25 * sigma.flatten().log(), embeddings, time_ids).sample
    target = (clean_latents - c_skip * noisy) / c_out
    return F.mse_loss(prediction, target)


def train_unet(
    vae,
    steps: int,
    seed: int,
    log: Log,
    hp: Hyperparameters = HYPERPARAMETERS,
    checkpoint=None,
    checkpoint_every: int = 250,
    unet_config=None,
    image_encoder_config=None,
    start_step: int = 0,
    resume_from=None,
    motion: str = "linear",
):
    """Stage 2. `resume_from` (unet, image_encoder) and `start_step` continue a run from a saved
    checkpoint: the clips and the learning-rate schedule pick up at `start_step`; the checkpoint holds
    the EMA weights only, so they seed both the trained and the EMA copy, with a fresh optimiser."""
    from diffusers import UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed + 1)
    if resume_from is not None:
        unet, image_encoder = (module.float().train().requires_grad_(True) for module in resume_from)
    else:
        unet = UNetSpatioTemporalConditionModel(**(unet_config or UNET_CONFIG))
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(**(image_encoder_config or IMAGE_ENCODER_CONFIG))
        )
    parameters = list(unet.parameters()) + list(image_encoder.parameters())
    optimiser = torch.optim.AdamW(parameters, lr=hp.unet_lr, weight_decay=hp.unet_weight_decay)
    ema_unet, ema_encoder = (copy.deepcopy(module).requires_grad_(False) for module in (unet, image_encoder))
    generator = torch.Generator().manual_seed(seed + 2 + start_step)
    for step in range(start_step, steps):
        lr = cosine_schedule(optimiser, hp.unet_lr, step, steps, hp.unet_warmup, hp.lr_floor, start_step)
        seeds = TRAIN_SEED_OFFSET + 5_000_000 + seed * 1_000_000 + step * hp.batch_clips + np.arange(hp.batch_clips)
        video, motion_bucket = clip_batch(seeds, motion)  # (B, F, 3, H, W)
        loss = diffusion_loss(unet, image_encoder, vae, video, motion_bucket, generator, hp)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, hp.max_grad_norm)
        optimiser.step()
        warming = min(hp.ema_decay, (1 + step - start_step) / (10 + step - start_step))  # a fresh average
        decay = warming if resume_from is None else hp.ema_decay
        with torch.no_grad():
            for ema, model in ((ema_unet, unet), (ema_encoder, image_encoder)):
                for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                    e.lerp_(p, 1 - decay)
        if _logged(step, steps, hp):
            log(stage="unet", step=step, loss=loss.item(), lr=lr)
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            checkpoint(ema_unet, ema_encoder, step + 1)  # the last step's weights: the caller saves them
    return ema_unet, ema_encoder


def assemble(vae, unet, image_encoder):
    from diffusers import StableVideoDiffusionPipeline
    from transformers import CLIPImageProcessor

    from ..models import svd_scheduler

    size = image_encoder.config.image_size
    feature_extractor = CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=svd_scheduler(), feature_extractor=feature_extractor
    )


def save(pipe, out: Path) -> None:
    """save_pretrained in float16 (half the size; loads into float32 with torch_dtype)."""
    pipe = copy.deepcopy(pipe)
    for module in (pipe.unet, pipe.vae, pipe.image_encoder):
        module.to(torch.float16)
    pipe.save_pretrained(out)


def main(argv=None, hp: Hyperparameters = HYPERPARAMETERS) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/toy-svd")
    parser.add_argument("--vae-steps", type=int, default=1200)
    parser.add_argument(
        "--decoder-steps",
        type=int,
        help="then the VAE's decoder alone on whole clips (stage 1b; default 800, or 0 with --resume: "
        "the saved decoder is kept unless you ask)",
    )
    parser.add_argument("--unet-steps", type=int, default=2200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--motion",
        choices=MOTIONS,
        default="linear",
        help="the UNet's clips: objects at constant velocity, also arcs and speed changes (varied), "
        "or also at the evaluation targets' speeds (fast)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=250, help="save the EMA UNet every N steps")
    parser.add_argument(
        "--layers-per-block",
        type=int,
        help="the UNet's resnet + attention layers per block "
        f"(default {UNET_CONFIG['layers_per_block']}; SVD's is 2). With --resume: the checkpoint's",
    )
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="continue from a checkpoint this script saved in DIR (its VAE, and its UNet and image encoder at "
        "the last checkpoint it logged: the final step of a finished run, the last periodic one of an "
        "interrupted run)",
    )
    args = parser.parse_args(argv)
    if args.decoder_steps is None:
        args.decoder_steps = 0 if args.resume else 800
    if args.decoder_steps < 0:
        parser.error(f"--decoder-steps must be at least 0, got {args.decoder_steps}")
    if args.checkpoint_every < 1:
        parser.error(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    if args.layers_per_block is not None and args.layers_per_block < 1:
        parser.error(f"--layers-per-block must be at least 1, got {args.layers_per_block}")
    out = Path(args.out)
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    start_step, resume_from = 0, None
    # what this sitting trains with, the log's record for card.py (a resume keeps the first sitting's too)
    settings = {"stage": "settings", "seed": args.seed, "threads": args.threads, "cpus": os.cpu_count()}
    settings.update(dataclasses.asdict(hp))
    if args.resume:
        from ..models import load_pipeline

        log_path = Path(args.resume) / LOG_NAME
        previous = [line for line in log_path.read_text().splitlines() if line.strip()] if log_path.exists() else []
        records = [json.loads(line) for line in previous]
        logged = {record["step"] for record in records if record.get("stage") == "checkpoint"}
        for i, record in enumerate(records):  # logs from before finished runs logged their final
            if record.get("stage") == "done" and record["unet_steps"] not in logged:  # checkpoint (data/toy-svd)
                records[i] = {"stage": "checkpoint", "step": record["unet_steps"], "minutes": record["minutes"]}
        saved = [i for i, record in enumerate(records) if record.get("stage") == "checkpoint"]
        if not saved:
            parser.error(f"--resume {args.resume}: {log_path} records no UNet checkpoint to continue from")
        start_step = records[saved[-1]]["step"]
        kept = [json.dumps(record) for record in records[: saved[-1] + 1]]
        resumed = load_pipeline(args.resume, device="cpu", dtype=torch.float32)
        saved_layers = resumed.unet.config.layers_per_block
        if args.layers_per_block not in (None, saved_layers):
            parser.error(
                f"--layers-per-block {args.layers_per_block}: the checkpoint in {args.resume} has "
                f"{saved_layers} layers per block, and --resume continues that UNet"
            )
        vae, resume_from = resumed.vae, (resumed.unet, resumed.image_encoder)
        log = Log(out / LOG_NAME)
        log.path.write_text("\n".join(kept) + "\n")
        log(stage="resume", step=start_step, source=str(args.resume))
        log(**settings)
    else:
        log = Log(out / LOG_NAME)
        log(**settings)
        vae = train_vae(args.vae_steps, args.seed, log, hp)
    if args.decoder_steps:
        vae = train_decoder(vae, args.decoder_steps, args.seed, log, hp)

    log(stage="data", step=start_step, motion=args.motion)  # the UNet's clips from here on: card.py reads it

    def checkpoint(unet, image_encoder, step):
        save(assemble(vae, unet, image_encoder), out)
        log(stage="checkpoint", step=step)

    unet_config = dict(UNET_CONFIG, layers_per_block=args.layers_per_block or UNET_CONFIG["layers_per_block"])
    unet, image_encoder = train_unet(
        vae,
        args.unet_steps,
        args.seed,
        log,
        hp,
        checkpoint=checkpoint,
        checkpoint_every=args.checkpoint_every,
        start_step=start_step,
        resume_from=resume_from,
        motion=args.motion,
        unet_config=unet_config,
    )
    save(assemble(vae, unet, image_encoder), out)
    log(stage="checkpoint", step=args.unet_steps)  # the final weights: what a later --resume continues from
    minutes = round((time.perf_counter() - started) / 60, 1)
    log(stage="done", vae_steps=args.vae_steps, unet_steps=args.unet_steps, total_minutes=minutes)
    print(f"saved in {out}; its card (TRAINING.md, the loss curves): python -m sgi2v_lite.toy.card {out}")


if __name__ == "__main__":
    main()
