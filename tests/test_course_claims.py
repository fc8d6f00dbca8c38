"""Sentences of the course that say what a figure shows, checked on the toy model through the same
calls the notebook makes (issue 23 collects more of them here)."""

import numpy as np
import torch
from conftest import ROOT
from PIL import Image


def test_notebook_03_one_iteration_by_hand(toy_pipe):
    """03, "One AdamW iteration by hand": the gradient sits on the boxes' paths; weight decay's
    shrink (lr x wd x |z|) is larger than Adam's step (lr), so the change is spread over the whole
    latent; frame 0's change is zero (the toy preset holds it fixed)."""
    from sgi2v_lite import generate, load_tracks
    from sgi2v_lite.models import default_config
    from sgi2v_lite.sampler import (
        fresh_scheduler,
        guidance_step,
        latent_gradient,
        prepare,
        resolve_config,
        step_learning_rate,
    )

    pipe = toy_pipe
    config = resolve_config(pipe, default_config(pipe))  # what load_model("auto") gives the notebook
    image, tracks = Image.open(ROOT / "data/examples/shapes.png"), load_tracks(ROOT / "data/examples/shapes.json")
    run = prepare(pipe, image, tracks, config)
    step = config.optimised_steps[0]
    entering = {}
    generate(
        pipe,
        image,
        tracks,
        config.replace(guidance=False),
        progress=False,
        callback=lambda info: entering.setdefault(info["step"], info["latents"]),
    )
    z = entering[step]
    scheduler = fresh_scheduler(pipe, config.num_inference_steps)
    timestep, sigma = scheduler.timesteps[step], float(scheduler.sigmas[step])
    _, grad = latent_gradient(pipe.unet, scheduler, z, timestep, run.cond, run.box_cells, run.valid, config)
    one = config.replace(iterations=1, frequency_mix=False)
    latent, _ = guidance_step(pipe.unet, scheduler, z, timestep, sigma, run.cond, run.box_cells, run.valid, one)

    gradient = grad[0].abs().mean(1).numpy()  # (F, h, w)
    on_paths = np.zeros_like(gradient, dtype=bool)
    for track in run.box_cells:
        for frame, (x0, y0, x1, y1) in enumerate(track.astype(int)):
            on_paths[frame, max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = True
    share = gradient[on_paths].sum() / gradient.sum()
    print(f"gradient on the paths: {share:.2f} of it on {on_paths.mean():.2f} of the area")
    assert share > 2 * on_paths.mean(), (share, on_paths.mean())

    lr = step_learning_rate(config, sigma)
    assert lr * config.weight_decay * z.abs().mean().item() > lr  # decay's shrink beats Adam's step
    change = (latent - z)[0].abs().mean(1)  # (F, h, w)
    assert torch.all(change[0] == 0) and not config.optimise_first_frame
    assert (change[1:] > 0).float().mean() > 0.9  # spread over the whole latent, not only the boxes
