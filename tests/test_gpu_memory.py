"""The GPU memory model (benchmarks/gpu_memory.py) runs the package's code on fake tensors, which
hold no data. Its premise, checked here: on real tensors of the same shapes and dtype the same
tracker finds the same peak, phase by phase (a tiny SVD-architecture UNet in float16 on the CPU)."""

import contextlib
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_memory  # noqa: E402


def tiny_phases(fake: bool) -> dict[str, int]:
    from diffusers import UNetSpatioTemporalConditionModel
    from torch._subclasses.fake_tensor import FakeTensorMode

    from sgi2v_lite.config import get_preset
    from sgi2v_lite.frequency import mix_frequencies
    from sgi2v_lite.models import svd_scheduler, tiny_random_pipeline
    from sgi2v_lite.sampler import Conditioning, denoise_step, guidance_scales, optimise_latent

    unet_config = dict(tiny_random_pipeline().unet.config)
    frames, latent_hw = 4, (16, 16)
    config = get_preset("toy").replace(
        height=32,
        width=32,
        num_frames=frames,
        iterations=1,
        optimised_steps=(1,),
        feature_layers=("up_blocks.1.attentions.1.transformer_blocks.0.attn1",),
    )
    scheduler = svd_scheduler()
    scheduler.set_timesteps(4)
    scheduler.set_begin_index(1)
    timestep, sigma = scheduler.timesteps[1], float(scheduler.sigmas[1])
    scheduler.sigmas = scheduler.sigmas.tolist()  # as the model does (see gpu_memory.phases)
    cells = np.array([[[2, 2, 6, 6], [3, 3, 7, 7], [4, 4, 8, 8], [5, 5, 9, 9]]])
    valid = np.ones((1, frames), bool)
    mode = FakeTensorMode(allow_non_fake_inputs=True) if fake else contextlib.nullcontext()
    results = {}
    with mode:
        torch.set_default_dtype(torch.float16)
        try:
            unet = UNetSpatioTemporalConditionModel(**unet_config)
        finally:
            torch.set_default_dtype(torch.float32)
        unet.requires_grad_(False)
        torch.manual_seed(0)  # real values of the scale of a generation's (a fake run ignores them)
        cond = Conditioning(
            torch.randn(2, 1, 32, dtype=torch.float16),
            torch.randn(2, frames, 4, *latent_hw, dtype=torch.float16),
            torch.tensor([[6.0, 127.0, 0.02]] * 2, dtype=torch.float16),
        )
        latents = torch.randn(1, frames, 4, *latent_hw) * sigma
        state = [unet, latents, cond.image_embeddings, cond.image_latents, cond.added_time_ids]
        scales = guidance_scales(config, "cpu", torch.float32)
        results["denoise"], _ = gpu_memory.peak(
            state, lambda: denoise_step(unet, scheduler, latents, timestep, cond, scales)
        )
        for checkpointing in (False, "diffusers", True):  # none, diffusers' own, memory.gradient_checkpointing
            setting = config.replace(gradient_checkpointing=checkpointing is True)
            if checkpointing == "diffusers":
                unet.enable_gradient_checkpointing()
            with torch.enable_grad():
                results[f"optimise, checkpointing {checkpointing}"], (optimised, _, _) = gpu_memory.peak(
                    state,
                    lambda setting=setting: optimise_latent(
                        unet, scheduler, latents, timestep, cond, cells, valid, setting, sigma
                    ),
                )
            unet.disable_gradient_checkpointing()
        results["mix"], _ = gpu_memory.peak([*state, optimised], lambda: mix_frequencies(optimised, latents, 0.5, 4))
    return results


@pytest.mark.slow
def test_fake_tensors_give_the_peak_of_real_ones():
    # `gpu_memory.peak` turns Python's cycle collector off while it counts: with it on, its timing
    # moved the checkpointed peak by up to 4 % between two identical runs in one process
    fake, real = tiny_phases(fake=True), tiny_phases(fake=False)
    assert fake.keys() == real.keys()
    for phase in real:
        # measured: equal but for a few scalar tensors (tens of bytes) in ~30 MB
        assert abs(fake[phase] - real[phase]) <= 1024, (phase, fake[phase], real[phase])
    # diffusers' checkpointing keeps the temporal blocks' activations; the package's keeps less
    optimise = [real[f"optimise, checkpointing {mode}"] for mode in (False, "diffusers", True)]
    assert optimise[0] > optimise[1] > optimise[2], optimise
    assert real["optimise, checkpointing True"] < real["optimise, checkpointing False"]  # the lever is seen


def test_the_margin_is_added_to_the_peak():
    assert gpu_memory.needed_gb(10.0) == pytest.approx(10 * (1 + gpu_memory.MARGIN_SHARE) + gpu_memory.MARGIN_GB)
    # the verdicts in benchmarks/MEMORY.md: SVD `reference` with both levers fits, with checkpointing alone not
    assert gpu_memory.verdict(int(11.08 * gpu_memory.GB)) == "fits (12.7 GB needed)"
    assert gpu_memory.verdict(int(13.20 * gpu_memory.GB)) == "does not fit (15.02 GB needed, 0.02 over)"
