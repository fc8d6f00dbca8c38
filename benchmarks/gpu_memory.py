"""GPU memory of SG-I2V on the full-size SVD, measured without a GPU or its weights.

    python benchmarks/gpu_memory.py [--models svd,svd-xt] [--presets reference,lite] [--out benchmarks/MEMORY.md]

How. SVD's published UNet, VAE and CLIP ViT-H/14 configs (`models.SVD_*_CONFIG`) are built under
torch's `FakeTensorMode` in float16: tensors with shapes, dtypes and storages but no data, on the
CPU (fake *CUDA* tensors cannot run a backward in the CPU build, and their attention falls back to
the math kernel, which materialises the whole attention matrix; fake CPU float16 attention takes the
flash kernel, whose footprint is the GPU's flash / memory-efficient kernels'). Every phase of a
guided generation then runs through the package's own functions (`clip_embedding`'s encoder,
`vae.encode`, `sampler.denoise_step`, `sampler.optimise_latent`, `frequency.mix_frequencies`,
`sampler.decode_to_tensor`) while `torch.distributed._tools.mem_tracker.MemTracker` counts every storage
allocated (weights, activations, gradients, temporaries, optimiser state) and keeps the peak. The
same tracker on real tensors gives the same peak (tests/test_gpu_memory.py).

What it does not see: the CUDA context, cuBLAS / cuDNN workspaces, and the caching allocator's
rounding and fragmentation. The verdicts add a stated margin for them (memory.MARGIN_GB, MARGIN_SHARE),
an assumption until a GPU measures it (`torch.cuda.max_memory_allocated` on the same phases).

Prints the tables of benchmarks/MEMORY.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sgi2v_lite.config import SGI2VConfig, get_preset  # noqa: E402
from sgi2v_lite.memory import GB, MARGIN_GB, MARGIN_SHARE, T4_GB, needed_gb  # noqa: E402
from sgi2v_lite.models import (  # noqa: E402
    PROFILES,
    SVD_IMAGE_ENCODER_CONFIG,
    SVD_UNET_CONFIG,
    SVD_VAE_CONFIG,
    svd_scheduler,
)


# ------------------------------------------------------------------------- the tracker
def tracker():
    """A MemTracker for models whose parameters do not require grad (SG-I2V's gradients go to the
    latent only): MemTracker would hook every parameter's gradient, which needs requires_grad."""
    from torch.distributed._tools.mem_tracker import MemTracker

    class Tracker(MemTracker):
        def _track_module_params_and_buffers(self, module, install_grad_hooks=True):
            return super()._track_module_params_and_buffers(module, install_grad_hooks=False)

        def _pre_fw_hook(self, module, inputs):
            # a top-level module called again in the forward (the VAE's decoder, once per chunk of
            # frames) is a new call: forget its per-module statistics (the peak is kept)
            name = self._mod_tracker.get_known_fqn(module)
            if module in self.memory_tracking and not self._mod_tracker.is_bw:
                if set(self._mod_tracker.parents) - {name} == {"Global"}:
                    del self.memory_tracking[module]
            super()._pre_fw_hook(module, inputs)

    return Tracker()


def peak(resident, run):
    """Peak bytes while `run()` executes, counting the `resident` modules and tensors (what lives on
    the GPU across phases) and everything `run` allocates. Returns (peak bytes, run's result).

    Python's cycle collector is off while `run` executes: checkpointing's bookkeeping frees some
    tensors only through reference cycles, and the collector's timing (which depends on every
    object the process allocated before) would otherwise move the peak by up to 4 % between two
    identical runs. Off, the count is deterministic and is the upper bound: cycles freed last."""
    mem = tracker()
    mem.track_external(*resident)
    gc.collect()
    gc.disable()
    try:
        with mem:
            result = run()
    finally:
        gc.enable()
    (snapshot,) = mem.get_tracker_snapshot("peak").values()
    return snapshot["Total"], result


# ------------------------------------------------------------------- the fake pipeline
@dataclass
class FakeSVD:
    pipe: object  # a StableVideoDiffusionPipeline of fake float16 tensors
    vae_fp32: object  # the same VAE in float32, as force_upcast makes it for encoding
    mode: object  # the FakeTensorMode they belong to


def fake_svd(num_frames: int, dtype=torch.float16) -> FakeSVD:
    """SVD's full-size pipeline (or SVD-XT's, 25 frames) of fake tensors in `dtype`: no memory, no data."""
    from diffusers import AutoencoderKLTemporalDecoder, StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    scheduler = svd_scheduler()  # real: its sigmas and timesteps are data the loop reads
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    default = torch.get_default_dtype()
    with mode:
        torch.set_default_dtype(dtype)  # build in the GPU's dtype (casting fake modules is not supported)
        try:
            unet = UNetSpatioTemporalConditionModel(**{**SVD_UNET_CONFIG, "num_frames": num_frames})
            vae = AutoencoderKLTemporalDecoder(**SVD_VAE_CONFIG)
            image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_IMAGE_ENCODER_CONFIG))
        finally:
            torch.set_default_dtype(default)
        vae_fp32 = AutoencoderKLTemporalDecoder(**SVD_VAE_CONFIG)
        for model in (unet, vae, image_encoder, vae_fp32):
            model.requires_grad_(False)
        pipe = StableVideoDiffusionPipeline(
            vae=vae,
            image_encoder=image_encoder,
            unet=unet,
            scheduler=scheduler,
            feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
        )
    return FakeSVD(pipe, vae_fp32, mode)


def demo_boxes(config: SGI2VConfig, latent_hw):
    """The demo's two tracks (a moving box and an anchor) on the latent grid of `config`'s size."""
    from sgi2v_lite.tracks import boxes_to_grid, load_tracks

    tracks = load_tracks(ROOT / "data/examples/shapes.json").rescaled((config.width, config.height))
    return boxes_to_grid(tracks.boxes_per_frame(config.num_frames), 8, latent_hw)


# ---------------------------------------------------------------------------- phases
@dataclass
class Levers:
    # gradient checkpointing in the optimisation's backward: None, "diffusers" (its own
    # enable_gradient_checkpointing: ResNets and spatial blocks) or "blocks" (memory.gradient_checkpointing:
    # whole spatio-temporal transformers too, what the config's gradient_checkpointing does)
    checkpointing: str | None = None
    offload: bool = False  # VAE and image encoder off the GPU while the UNet runs (the reference does this)
    ff_chunking: bool = False  # the transformer blocks' feed-forward layers one frame at a time
    decode_chunk: int | None = None  # frames decoded at once (None: the config's)


def phases(svd: FakeSVD, config: SGI2VConfig, levers: Levers) -> dict[str, int]:
    """Peak bytes of each phase of one guided generation with `config` and `levers`."""
    from sgi2v_lite.frequency import mix_frequencies
    from sgi2v_lite.sampler import Conditioning, decode_to_tensor, denoise_step, guidance_scales, optimise_latent

    pipe = svd.pipe
    unet, vae, clip = pipe.unet, pipe.vae, pipe.image_encoder
    frames, latent_hw = config.num_frames, (config.height // 8, config.width // 8)
    box_cells, valid = demo_boxes(config, latent_hw)
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(config.num_inference_steps)
    step = config.optimised_steps[0]
    scheduler.set_begin_index(step)  # (finding it from the timestep would read data: fake tensors have none)
    timestep, sigma = scheduler.timesteps[step], float(scheduler.sigmas[step])
    # Euler's step compares sigma with its s_tmin / s_tmax: on a fake tensor that comparison has no
    # answer. As plain floats the schedule's arithmetic is the same and allocates nothing either way.
    scheduler.sigmas = scheduler.sigmas.tolist()
    for module in unet.modules():  # diffusers' enable_forward_chunking(1, 0), and its undoing
        if hasattr(module, "set_chunk_feed_forward"):
            module.set_chunk_feed_forward(chunk_size=1 if levers.ff_chunking else None, dim=0)
    results, started = {}, time.perf_counter()
    with svd.mode:
        weights = [unet, vae, clip]
        results["weights (fp16 UNet + VAE + CLIP)"], _ = peak(weights, lambda: None)
        pixels = torch.zeros(1, 3, 224, 224, dtype=clip.dtype)
        results["CLIP image encoder"], embedding = peak(weights, lambda: clip(pixels).image_embeds[:, None])
        # SVD's VAE has force_upcast: diffusers (and encode_conditioning) cast it to float32 to encode
        image = torch.zeros(1, 3, config.height, config.width)
        results["VAE encode (float32, upcast)"], _ = peak(
            [unet, clip, svd.vae_fp32, embedding], lambda: svd.vae_fp32.encode(image).latent_dist.mode()
        )
        cond = Conditioning(
            torch.cat([torch.zeros_like(embedding), embedding]),
            torch.zeros(2, frames, 4, *latent_hw, dtype=unet.dtype),
            torch.zeros(2, 3, dtype=unet.dtype),
        )
        latents = torch.zeros(1, frames, 4, *latent_hw)  # float32, as the sampler keeps it
        on_gpu = [unet] if levers.offload else weights
        state = [*on_gpu, latents, cond.image_embeddings, cond.image_latents, cond.added_time_ids]
        scales = guidance_scales(config, "cpu", torch.float32)
        results["denoising step (CFG, batch 2)"], _ = peak(
            state, lambda: denoise_step(unet, scheduler, latents, timestep, cond, scales)
        )
        one = config.replace(iterations=1, gradient_checkpointing=levers.checkpointing == "blocks")
        if levers.checkpointing == "diffusers":
            unet.enable_gradient_checkpointing()
        with torch.enable_grad():
            results["optimisation iteration (fwd + bwd + AdamW)"], (optimised, _, _) = peak(
                state, lambda: optimise_latent(unet, scheduler, latents, timestep, cond, box_cells, valid, one, sigma)
            )
        unet.disable_gradient_checkpointing()
        results["frequency mix"], mixed = peak(
            [*state, optimised],
            lambda: mix_frequencies(optimised, latents, config.lowpass_cutoff, config.lowpass_order),
        )
        chunk = levers.decode_chunk or config.decode_chunk_size
        decoding = [vae, latents] if levers.offload else [*weights, latents]  # offloaded: the UNet leaves for the VAE
        results[f"decode ({chunk} frames at a time)"], _ = peak(
            decoding, lambda: decode_to_tensor(pipe, latents, chunk)
        )
    if VERBOSE:
        print(f"  phases in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return results


VERBOSE = False


# ---------------------------------------------------------------------------- tables
LEVER_ROWS = {
    "none": Levers(),
    "diffusers' checkpointing": Levers(checkpointing="diffusers"),
    "whole-block checkpointing": Levers(checkpointing="blocks"),
    "+ offload VAE and CLIP": Levers(checkpointing="blocks", offload=True),
    "+ feed-forward chunking": Levers(checkpointing="blocks", offload=True, ff_chunking=True),
    "+ decode 2 frames at a time": Levers(checkpointing="blocks", offload=True, ff_chunking=True, decode_chunk=2),
}


def verdict(total: int) -> str:
    need = needed_gb(total / GB)
    digits = 2 if abs(need - T4_GB) < 0.1 else 1  # a hair over or under: say by how much
    if need <= T4_GB:
        return f"fits ({need:.{digits}f} GB needed)"
    return f"does not fit ({need:.{digits}f} GB needed, {need - T4_GB:.{digits}f} over)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="svd,svd-xt")
    parser.add_argument("--presets", default="reference,lite")
    parser.add_argument("--levers", default=",".join(LEVER_ROWS), help="comma-separated rows of the lever table")
    parser.add_argument("--out", help="also write the tables to this markdown file")
    args = parser.parse_args()

    lines = [
        f"Model: fake float16 tensors on the CPU, torch {torch.__version__}; margin for what it cannot see: "
        f"+{MARGIN_SHARE:.0%} and +{MARGIN_GB} GB (assumed). T4: {T4_GB} GB usable.",
        "",
    ]
    for model in args.models.split(","):
        svd = fake_svd(PROFILES[model].num_frames)
        for preset in args.presets.split(","):
            config = get_preset(preset).replace(num_frames=PROFILES[model].num_frames)
            if preset == "reference":  # the paper's 16 optimised steps of 50 (5..20): the first one is the one measured
                config = config.replace(optimised_steps=tuple(range(5, 21)))
            lines += [
                f"### {model} ({PROFILES[model].num_frames} frames), preset `{preset}`: "
                f"{config.height} x {config.width}, "
                f"{config.num_inference_steps} steps, decode chunk {config.decode_chunk_size}",
                "",
            ]
            table, names = {}, None
            for lever in args.levers.split(","):
                started = time.perf_counter()
                table[lever] = phases(svd, config, LEVER_ROWS[lever])
                names = list(table[lever])
                print(f"[{model} {preset} {lever}: {time.perf_counter() - started:.0f} s]", file=sys.stderr)
            lines.append("| phase (peak, GB) | " + " | ".join(table) + " |")
            lines.append("|---|" + "---|" * len(table))
            for index in range(len(names)):
                row = [list(result.items())[index] for result in table.values()]
                label = row[0][0] if len({name for name, _ in row}) == 1 else row[0][0].split(" (")[0]
                lines.append(f"| {label} | " + " | ".join(f"{value / GB:.2f}" for _, value in row) + " |")
            totals = {lever: max(result.values()) for lever, result in table.items()}
            lines.append("| **peak of the run** | " + " | ".join(f"**{v / GB:.2f}**" for v in totals.values()) + " |")
            lines.append("| T4 (15 GB) with the margin | " + " | ".join(verdict(v) for v in totals.values()) + " |")
            lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
