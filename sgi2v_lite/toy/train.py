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
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .world import CAMERA_SHARES, FAST_SPEED, MOTIONS, TOY_SIZE, make_scene

TRAIN_SEED_OFFSET = 0  # training clips use seeds 0, 1, 2, ...
EVAL_SEED_OFFSET = 10_000_000  # evaluation scenes never overlap training clips
NUM_FRAMES = 8
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

UNET_CONFIG = dict(
    sample_size=32,  # 64 px frames through a x2 VAE: a 32 x 32 latent
    in_channels=8,
    out_channels=4,
    # SVD's blocks, without attention at the 32 x 32 level (too slow on a CPU): the middle-resolution
    # up block, up_blocks[1] at 16 x 16, plays the role of SVD's up_blocks[2] at 36 x 64
    down_block_types=("DownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal"),
    up_block_types=("CrossAttnUpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal"),
    # at least 64 channels at the top level: diffusers fixes GroupNorm at 32 groups, and with 32
    # channels the norm before the output convolution is an instance norm, which erases each
    # channel's per-frame mean (the frame's colour) so the model cannot predict it
    block_out_channels=(64, 64, 96),
    layers_per_block=1,
    cross_attention_dim=64,
    num_attention_heads=(4, 4, 6),
    addition_time_embed_dim=32,
    projection_class_embeddings_input_dim=96,
    num_frames=NUM_FRAMES,
)
VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    # x2: 64 px frames to a 32 x 32 latent. 64 channels at the image end and 128 at the latent end
    # (2 and 4 channels per GroupNorm group): with 32 channels the last norms erase colour means,
    # and the VAE learns several times slower
    down_block_types=("DownEncoderBlock2D",) * 2,
    block_out_channels=(64, 128),
    layers_per_block=1,
    latent_channels=4,
    sample_size=TOY_SIZE,
)
IMAGE_ENCODER_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    projection_dim=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=4,
)


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


def vae_loss(vae, frames: torch.Tensor, num_frames: int, kl_weight: float = 1e-4) -> tuple[torch.Tensor, dict]:
    """Reconstruction (MSE + 0.5 L1) of frames (B*F, 3, h, w) through the posterior's mode, plus a
    small KL term that keeps the latents near unit scale. Decoding the mode (not a sample) is what
    SVD's pipeline does with the conditioning frame, and it trains several times faster here."""
    posterior = vae.encode(frames).latent_dist
    reconstruction = vae.decode(posterior.mode(), num_frames=num_frames).sample
    mse = F.mse_loss(reconstruction, frames)
    kl = posterior.kl().mean() / posterior.mean[0].numel()
    loss = mse + 0.5 * F.l1_loss(reconstruction, frames) + kl_weight * kl
    return loss, {"mse": mse.item(), "kl": kl.item()}


def train_vae(steps: int, seed: int, log: Log, batch_clips: int = 4, crop: int = 32, lr: float = 3e-4, config=None):
    from diffusers import AutoencoderKLTemporalDecoder

    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(**(config or VAE_CONFIG))
    optimiser = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        current_lr = lr * min(1, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for group in optimiser.param_groups:
            group["lr"] = current_lr
        video, _ = clip_batch(TRAIN_SEED_OFFSET + seed * 1_000_000 + step * batch_clips + np.arange(batch_clips))
        y, x = rng.integers(0, TOY_SIZE - crop + 1, 2)
        frames = video[..., y : y + crop, x : x + crop].flatten(0, 1)  # (B*F, 3, crop, crop), one crop per batch
        loss, parts = vae_loss(vae, frames, NUM_FRAMES)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimiser.step()
        if step % 25 == 0 or step == steps - 1:
            log(stage="vae", step=step, loss=loss.item(), lr=current_lr, **parts)
    vae.eval().requires_grad_(False)
    with torch.no_grad():  # scaling factor: latents of unit standard deviation, as SVD's 0.18215 does
        video, _ = clip_batch(EVAL_SEED_OFFSET - 1000 + np.arange(8))
        latents = vae.encode(video.flatten(0, 1)).latent_dist.mode()
        vae.register_to_config(scaling_factor=float(1 / latents.std()))
        reconstruction = vae.decode(latents, num_frames=NUM_FRAMES).sample
        psnr = -10 * math.log10(F.mse_loss(reconstruction, video.flatten(0, 1)).item() / 4)  # peak-to-peak 2
    log(stage="vae-done", scaling_factor=vae.config.scaling_factor, psnr_db=psnr)
    return vae


@torch.no_grad()
def psnr_by_frame(vae, seeds=EVAL_SEED_OFFSET - 1000 + np.arange(8)) -> np.ndarray:
    """Held-out round-trip PSNR (dB) of each frame position, (F,): the clips of the VAE stage's check."""
    video, _ = clip_batch(seeds)  # (B, F, 3, H, W)
    latents = vae.encode(video.flatten(0, 1).to(vae.dtype)).latent_dist.mode()
    reconstruction = vae.decode(latents, num_frames=NUM_FRAMES).sample.float().clamp(-1, 1).unflatten(0, video.shape[:2])
    mse = ((reconstruction - video) ** 2).mean(dim=(0, 2, 3, 4))  # (F,)
    return (-10 * torch.log10(mse / 4)).numpy()  # peak-to-peak 2


def train_decoder(vae, steps: int, seed: int, log: Log, batch_clips: int = 4, lr: float = 1e-4):
    """Stage 1b: the temporal decoder alone, on whole clips, with the encoder frozen.

    Stage 1 trains on 32 px crops, and its decoder leaves the last frames the worst (the shipped one
    before this stage: 31.2 dB at frame 0, 28.7 dB at frame 7, whose colours drift). With the
    encoder frozen the latents do not change, so this stage can also run on a finished model
    (`--resume DIR --decoder-steps N`): the UNet trained on those latents stays valid."""
    vae.float().requires_grad_(False)
    vae.decoder.train().requires_grad_(True)
    optimiser = torch.optim.AdamW(vae.decoder.parameters(), lr=lr, weight_decay=0.0)
    log(stage="decoder-start", psnr_by_frame=[round(float(v), 2) for v in psnr_by_frame(vae)])
    for step in range(steps):
        current_lr = lr * min(1, (step + 1) / 20) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for group in optimiser.param_groups:
            group["lr"] = current_lr
        video, _ = clip_batch(TRAIN_SEED_OFFSET + 3_000_000 + seed * 1_000_000 + step * batch_clips + np.arange(batch_clips))
        frames = video.flatten(0, 1)  # (B*F, 3, H, W), whole frames
        with torch.no_grad():
            latents = vae.encode(frames).latent_dist.mode()
        reconstruction = vae.decode(latents, num_frames=NUM_FRAMES).sample
        mse = F.mse_loss(reconstruction, frames)
        loss = mse + 0.5 * F.l1_loss(reconstruction, frames)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.decoder.parameters(), 1.0)
        optimiser.step()
        if step % 25 == 0 or step == steps - 1:
            log(stage="decoder", step=step, loss=loss.item(), lr=current_lr, mse=mse.item())
    vae.eval().requires_grad_(False)
    log(stage="decoder-done", psnr_by_frame=[round(float(v), 2) for v in psnr_by_frame(vae)])
    return vae


def diffusion_loss(unet, image_encoder, vae, video: torch.Tensor, motion_bucket: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """SVD's training objective on a batch of clips (B, F, 3, H, W) in [-1, 1].

    EDM preconditioning with v-prediction and sigma_data = 1, the parametrisation that diffusers'
    EulerDiscreteScheduler (prediction_type "v_prediction", timestep_type "continuous") inverts:
    x0 = c_skip * x_sigma + c_out * F(c_in * x_sigma, 0.25 log sigma), with
    c_in = 1/sqrt(sigma^2+1), c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1)."""
    batch, frames = video.shape[:2]
    scaling = vae.config.scaling_factor
    # noise augmentation of the conditioning frame: log-normal strength, as SVD
    noise_aug = torch.exp(-3.0 + 0.5 * torch.randn(batch, generator=generator))
    first = video[:, 0]
    with torch.no_grad():
        clean_latents = vae.encode(video.flatten(0, 1)).latent_dist.mode().unflatten(0, (batch, frames)) * scaling
        noisy_first = first + noise_aug.view(-1, 1, 1, 1) * torch.randn(first.shape, generator=generator)
        image_latent = vae.encode(noisy_first).latent_dist.mode()  # unscaled, as SVD's pipeline
    embeddings = image_encoder(clip_encoder_input(first, image_encoder.config.image_size)).image_embeds[:, None]
    # conditioning dropout: the unconditional half of CFG sees zeros for both
    keep = (torch.rand(batch, generator=generator) > 0.1).float()
    embeddings = embeddings * keep.view(-1, 1, 1)
    image_latents = (image_latent * keep.view(-1, 1, 1, 1))[:, None].repeat(1, frames, 1, 1, 1)
    time_ids = torch.stack([torch.full((batch,), 6.0), motion_bucket, noise_aug], dim=1)  # fps - 1, motion, aug

    sigma = torch.exp(0.7 + 1.6 * torch.randn(batch, generator=generator)).view(-1, 1, 1, 1, 1)
    noisy = clean_latents + sigma * torch.randn(clean_latents.shape, generator=generator)
    c_in, c_skip, c_out = 1 / (sigma**2 + 1).sqrt(), 1 / (sigma**2 + 1), -sigma / (sigma**2 + 1).sqrt()
    model_input = torch.cat([noisy * c_in, image_latents], dim=2)
    prediction = unet(model_input, 0.25 * sigma.flatten().log(), embeddings, time_ids).sample
    target = (clean_latents - c_skip * noisy) / c_out
    return F.mse_loss(prediction, target)


def train_unet(vae, steps: int, seed: int, log: Log, batch_clips: int = 4, lr: float = 5e-4, ema_decay: float = 0.998,
               checkpoint=None, checkpoint_every: int = 250, unet_config=None, image_encoder_config=None,
               start_step: int = 0, resume_from=None, motion: str = "linear"):  # fmt: skip
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
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**(image_encoder_config or IMAGE_ENCODER_CONFIG)))
    parameters = list(unet.parameters()) + list(image_encoder.parameters())
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.01)
    ema_unet, ema_encoder = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(image_encoder).requires_grad_(False)
    generator = torch.Generator().manual_seed(seed + 2 + start_step)
    for step in range(start_step, steps):
        current_lr = lr * min(1, (step + 1 - start_step) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for group in optimiser.param_groups:
            group["lr"] = current_lr
        seeds = TRAIN_SEED_OFFSET + 5_000_000 + seed * 1_000_000 + step * batch_clips + np.arange(batch_clips)
        video, motion_bucket = clip_batch(seeds, motion)  # (B, F, 3, H, W)
        loss = diffusion_loss(unet, image_encoder, vae, video, motion_bucket, generator)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        decay = min(ema_decay, (1 + step - start_step) / (10 + step - start_step)) if resume_from is None else ema_decay
        with torch.no_grad():
            for ema, model in ((ema_unet, unet), (ema_encoder, image_encoder)):
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.lerp_(p, 1 - decay)
        if step % 25 == 0 or step == steps - 1:
            log(stage="unet", step=step, loss=loss.item(), lr=current_lr)
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            checkpoint(ema_unet, ema_encoder, step + 1)  # the last step's weights: the caller saves them
    return ema_unet, ema_encoder


def plot_log(log_path: Path, png_path: Path) -> None:
    """Loss curves of the stages from the JSON-lines log, as a PNG beside it; stage 1b's (the decoder
    alone, whole clips) continues the VAE's curve, on the steps after it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for axis, stage, key, title in ((axes[0], "vae", "mse", "VAE reconstruction MSE"),
                                    (axes[1], "unet", "loss", "UNet diffusion loss (EDM, v)")):  # fmt: skip
        points = [(r["step"], r[key]) for r in records if r.get("stage") == stage]
        if points:
            steps, values = zip(*points)
            axis.plot(steps, values, lw=0.8, label="VAE (32 px crops)" if stage == "vae" else None)
            axis.set_yscale("log")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step")
    decoder, offset, last = [], 1 + max((r["step"] for r in records if r.get("stage") == "vae"), default=-1), 0
    for r in records:  # stage 1b, in one sitting or more: each continues the curve where the last ended
        if r.get("stage") == "decoder-start":
            offset, last = offset + last, 0
        elif r.get("stage") == "decoder":
            decoder.append((offset + r["step"], r["mse"]))
            last = r["step"] + 1
    if decoder:
        axes[0].plot(*zip(*decoder), lw=0.8, label="decoder alone (stage 1b, whole clips)")
        axes[0].set_yscale("log")
        axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png_path, dpi=90)
    plt.close(figure)


MOTION_WORDS = {"linear": "at constant velocity",
                "varied": "at constant velocity, some (`--motion varied`: 3 in 10 of the moving objects each) "
                          "along an arc or speeding up or slowing down",
                "fast": f"at constant velocity, some (`--motion fast`: 3 in 10 of the moving objects) at "
                        f"{FAST_SPEED[0] * TOY_SIZE / 128:g} to {FAST_SPEED[1] * TOY_SIZE / 128:g} px a frame, "
                        "the speeds of the evaluation's targets"}  # fmt: skip


def motion_line(records: list[dict]) -> str:
    """The card's words for the UNet's clips, from the log's "data" records (step, motion); a log
    without them (older runs) was linear throughout. E.g. "at constant velocity" or "at constant
    velocity (steps 0..2199), then ... (from step 2200)"."""
    stretches = [(r["step"], r["motion"]) for r in records if r.get("stage") == "data"]
    if not stretches or stretches[0][0] > 0:
        stretches.insert(0, (0, "linear"))
    merged = [stretches[0]]
    for step, motion in stretches[1:]:
        if motion != merged[-1][1]:  # a resume with the same motion continues the stretch
            merged.append((step, motion))
    if len(merged) == 1:
        return MOTION_WORDS[merged[0][1]]
    parts = [f"{MOTION_WORDS[motion]} (steps {step}..{end - 1})" for (step, motion), (end, _) in zip(merged, merged[1:])]
    parts.append(f"{MOTION_WORDS[merged[-1][1]]} (from step {merged[-1][0]})")
    return ", then ".join(parts)


def write_model_card(out: Path, pipe, evaluation: str | None = None) -> None:
    """data/<toy folder>/README.md: data, architecture, parameter counts, training, evaluation."""
    from ..models import default_feature_layers

    records = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines() if line.strip()]
    vae_done = next((r for r in records if r.get("stage") == "vae-done"), {})
    done = next((r for r in records if r.get("stage") == "done"), {})
    last = {stage: max((r for r in records if r.get("stage") == stage), key=lambda r: r["step"], default={})
            for stage in ("vae", "unet")}  # fmt: skip
    unet_losses = [r["loss"] for r in records if r.get("stage") == "unet" and r["step"] >= last["unet"].get("step", 0) - 400]
    resume = next((r for r in records if r.get("stage") == "resume"), None)
    motion = motion_line(records)
    decoder = ""
    stage_1b = [i for i, r in enumerate(records) if r.get("stage") in ("decoder-start", "decoder-done")]
    decoder_done = records[stage_1b[-1]] if stage_1b and records[stage_1b[-1]]["stage"] == "decoder-done" else None
    if decoder_done is not None:  # stage 1b ran (`--decoder-steps`), in one sitting or both: count them all
        start = records[stage_1b[0]]["psnr_by_frame"]
        steps = sum(1 + max((r["step"] for r in records[begin:end] if r.get("stage") == "decoder"), default=-1)
                    for begin, end in zip(stage_1b[::2], stage_1b[1::2]))  # fmt: skip
        by_frame = lambda values: " / ".join(f"{v:.1f}" for v in values)  # noqa: E731
        decoder = (f"\n- Decoder alone (stage 1b, `--decoder-steps`): {steps} step{'s' * (steps != 1)} of 4 whole {TOY_SIZE} x {TOY_SIZE} clips, "
                   f"the encoder\n  frozen (the latents do not change), AdamW lr 1e-4 (cosine), MSE + 0.5 L1; held-out "
                   f"PSNR by\n  frame {by_frame(decoder_done['psnr_by_frame'])} dB\n  (before it: {by_frame(start)}).")  # fmt: skip
    total_minutes = done.get("total_minutes", float("nan"))
    sittings = ""
    if resume is not None:  # minutes restart with each sitting: add the first sitting's
        before = [r for r in records[: records.index(resume)] if r.get("stage") == "checkpoint"]
        total_minutes += before[-1]["minutes"]
    if resume is not None and last["unet"].get("step", -1) + 1 <= resume["step"]:  # no UNet step after the resume
        decoder_after = decoder_done is not None and records.index(decoder_done) > records.index(resume)
        second = "trained the decoder alone" if decoder_after else "trained nothing"
        sittings = (f"\n- Trained in two sittings: the second (`--resume`) kept the UNet and image encoder of "
                    f"step {resume['step']}\n  and {second}.")
    elif resume is not None:
        sittings = (f"\n- Trained in two sittings: the second (`--resume`) continued the UNet from the checkpoint at step"
                    f"\n  {resume['step']} (EMA weights, a fresh optimiser with a new 100-step warm-up, the cosine schedule "
                    f"of the\n  new total) on the clips of the later steps.")
    count = lambda module: f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M"  # noqa: E731
    size_mb = sum(f.stat().st_size for f in out.rglob("*.safetensors")) / 2**20
    unet = pipe.unet.config  # the trained UNet's own: `--layers-per-block` changes it
    layers = f"{unet['layers_per_block']} layer{'s' if unet['layers_per_block'] > 1 else ''}"
    hooked = " and ".join(f"`{name}`" for name in default_feature_layers(pipe.unet))
    card = f"""# toy-svd: a Stable Video Diffusion pipeline for the toy world

A real `StableVideoDiffusionPipeline` (diffusers' `UNetSpatioTemporalConditionModel`,
`AutoencoderKLTemporalDecoder`, `CLIPVisionModelWithProjection` + `CLIPImageProcessor`,
`EulerDiscreteScheduler` with SVD's settings) at toy size, trained from scratch by
`sgi2v_lite/toy/train.py` (`make toy-model`) on the procedural videos of `sgi2v_lite/toy/world.py`.
`load_pipeline("toy")` loads it with `from_pretrained`, the same path as a real checkpoint.

## Data
Freshly generated clips, never repeated: {TOY_SIZE} x {TOY_SIZE} pixels, {NUM_FRAMES} frames; 1 to 3 shapes
(circle, square, triangle) {motion}, bouncing off the borders, over a smooth textured
background; {100 * (1 - CAMERA_SHARES[0]):g} % of clips with camera pan, zoom in or zoom out. Motion bucket id = mean object
displacement (0 still .. 255 for {4 * TOY_SIZE / 128:g} px a frame); fps 7; noise augmentation log-normal (-3, 0.5).
Evaluation scenes come from a disjoint seed range.

## Architecture
| part | configuration | parameters |
|---|---|---|
| UNet | blocks {tuple(unet['block_out_channels'])}, down {tuple(unet['down_block_types'])}, {layers} per block, heads {tuple(unet['num_attention_heads'])}, latent 4 x 32 x 32 | {count(pipe.unet)} |
| VAE | blocks {VAE_CONFIG['block_out_channels']} (x{2 ** (len(VAE_CONFIG['block_out_channels']) - 1)}), 4 latent channels, scaling factor {pipe.vae.config.scaling_factor:.4f} | {count(pipe.vae)} |
| image encoder | CLIP ViT, hidden {IMAGE_ENCODER_CONFIG['hidden_size']}, {IMAGE_ENCODER_CONFIG['num_hidden_layers']} layers, {IMAGE_ENCODER_CONFIG['image_size']} px input, projection {IMAGE_ENCODER_CONFIG['projection_dim']} | {count(pipe.image_encoder)} |

The middle-resolution up block, `up_blocks[1]` (16 x 16), plays the role of SVD's `up_blocks[2]`:
SG-I2V hooks {hooked}. Weights stored in float16:
{size_mb:.1f} MB in all.

## Training
- VAE: {last['vae'].get('step', -1) + 1} steps, 4 clips of 32 x 32 crops, AdamW lr 3e-4 (cosine), MSE + 0.5 L1 +
  1e-4 KL on the posterior mode; held-out PSNR {vae_done.get('psnr_db', float('nan')):.1f} dB.{decoder}
- UNet and image encoder together: {last['unet'].get('step', -1) + 1} steps of 4 clips, AdamW lr 5e-4 (cosine),
  SVD's objective (EDM preconditioning, v-prediction, log-normal sigma (0.7, 1.6)), conditioning
  dropout 10 %, EMA 0.998 (saved); loss over the last 400 steps {np.mean(unet_losses) if unet_losses else float('nan'):.3f} (the mean of the
  batches logged every 25 steps; one batch's loss swings with its sampled sigmas, the last was {last['unet'].get('loss', float('nan')):.3f}).
- Total {total_minutes:.0f} minutes on the project's 2-core CPU machine (2 threads).
  Loss curves: `training_loss.png`; the log: `training_log.jsonl`.{sittings}
"""
    if evaluation:
        card += "\n## Evaluation\n\n" + evaluation.strip() + "\n"
    (out / "README.md").write_text(card)


def assemble(vae, unet, image_encoder):
    from diffusers import StableVideoDiffusionPipeline
    from transformers import CLIPImageProcessor

    from ..models import svd_scheduler

    size = IMAGE_ENCODER_CONFIG["image_size"]
    feature_extractor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                           image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))  # fmt: skip
    return StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet, scheduler=svd_scheduler(),
                                        feature_extractor=feature_extractor)  # fmt: skip


def save(pipe, out: Path) -> None:
    """save_pretrained in float16 (half the size; loads into float32 with torch_dtype)."""
    pipe = copy.deepcopy(pipe)
    for module in (pipe.unet, pipe.vae, pipe.image_encoder):
        module.to(torch.float16)
    pipe.save_pretrained(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/toy-svd")
    parser.add_argument("--vae-steps", type=int, default=1200)
    parser.add_argument("--decoder-steps", type=int,
                        help="then the VAE's decoder alone on whole clips (stage 1b; default 800, or 0 with --resume: "
                        "the saved decoder is kept unless you ask)")  # fmt: skip
    parser.add_argument("--unet-steps", type=int, default=2200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--motion", choices=MOTIONS, default="linear",
                        help="the UNet's clips: objects at constant velocity, also arcs and speed changes (varied), "
                        "or also at the evaluation targets' speeds (fast)")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="save the EMA UNet every N steps")
    parser.add_argument("--layers-per-block", type=int, help="the UNet's resnet + attention layers per block "
                        f"(default {UNET_CONFIG['layers_per_block']}; SVD's is 2). With --resume: the checkpoint's")  # fmt: skip
    parser.add_argument("--resume", metavar="DIR", help="continue from a checkpoint this script saved in DIR "
                        "(its VAE, and its UNet and image encoder at the last checkpoint it logged: the final step "
                        "of a finished run, the last periodic one of an interrupted run)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.decoder_steps is None:
        args.decoder_steps = 0 if args.resume else 800
    if args.decoder_steps < 0:
        parser.error(f"--decoder-steps must be at least 0, got {args.decoder_steps}")
    if args.checkpoint_every < 1:
        parser.error(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    if args.layers_per_block is not None and args.layers_per_block < 1:
        parser.error(f"--layers-per-block must be at least 1, got {args.layers_per_block}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    start_step, resume_from = 0, None
    if args.resume:
        from ..models import load_pipeline

        log_path = Path(args.resume) / "training_log.jsonl"
        previous = [line for line in log_path.read_text().splitlines() if line.strip()] if log_path.exists() else []
        records = [json.loads(line) for line in previous]
        logged = {record["step"] for record in records if record.get("stage") == "checkpoint"}
        for i, record in enumerate(records):  # logs from before finished runs logged their final
            if record.get("stage") == "done" and record["unet_steps"] not in logged:  # checkpoint (data/toy-svd)
                records[i] = dict(stage="checkpoint", step=record["unet_steps"], minutes=record["minutes"])
        saved = [i for i, record in enumerate(records) if record.get("stage") == "checkpoint"]
        if not saved:
            parser.error(f"--resume {args.resume}: {log_path} records no UNet checkpoint to continue from")
        start_step = records[saved[-1]]["step"]
        kept = [json.dumps(record) for record in records[: saved[-1] + 1]]
        resumed = load_pipeline(args.resume, device="cpu", dtype=torch.float32)
        saved_layers = resumed.unet.config.layers_per_block
        if args.layers_per_block not in (None, saved_layers):
            parser.error(f"--layers-per-block {args.layers_per_block}: the checkpoint in {args.resume} has "
                         f"{saved_layers} layers per block, and --resume continues that UNet")  # fmt: skip
        vae, resume_from = resumed.vae, (resumed.unet, resumed.image_encoder)
        log = Log(out / "training_log.jsonl")
        log.path.write_text("\n".join(kept) + "\n")
        log(stage="resume", step=start_step, source=str(args.resume))
    else:
        log = Log(out / "training_log.jsonl")
        vae = train_vae(args.vae_steps, args.seed, log)
    if args.decoder_steps:
        vae = train_decoder(vae, args.decoder_steps, args.seed, log)

    log(stage="data", step=start_step, motion=args.motion)  # the UNet's clips from here on: motion_line() reads it

    def checkpoint(unet, image_encoder, step):
        save(assemble(vae, unet, image_encoder), out)
        log(stage="checkpoint", step=step)

    unet, image_encoder = train_unet(vae, args.unet_steps, args.seed, log, checkpoint=checkpoint,
                                     checkpoint_every=args.checkpoint_every, start_step=start_step,
                                     resume_from=resume_from, motion=args.motion,
                                     unet_config=dict(UNET_CONFIG, layers_per_block=args.layers_per_block or
                                                      UNET_CONFIG["layers_per_block"]))  # fmt: skip
    save(assemble(vae, unet, image_encoder), out)
    log(stage="checkpoint", step=args.unet_steps)  # the final weights: what a later --resume continues from
    plot_log(out / "training_log.jsonl", out / "training_loss.png")
    log(stage="done", vae_steps=args.vae_steps, unet_steps=args.unet_steps,
        total_minutes=round((time.perf_counter() - started) / 60, 1))  # fmt: skip
    write_model_card(out, assemble(vae, unet, image_encoder))


if __name__ == "__main__":
    main()
