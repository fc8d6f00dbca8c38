"""What the sampler produced before issue 22's redesign, to hold it to the same output.

`python tests/golden/golden.py` writes `before_redesign.npz` (run once, on main just before the
redesign: commit a2e48e0); `tests/test_same_output.py` recomputes `outputs()` and compares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
SAVED = Path(__file__).with_name("before_redesign.npz")


def outputs(toy_pipe, tiny_pipe) -> dict[str, np.ndarray]:
    """Frames, final latents and per-step losses of three runs, and features from the probe."""
    from PIL import Image

    from sgi2v_lite import probe
    from sgi2v_lite.config import get_preset
    from sgi2v_lite.sampler import generate, prepare
    from sgi2v_lite.tracks import load_tracks, parse_tracks

    image = Image.open(ROOT / "data/examples/shapes.png")
    tracks = load_tracks(ROOT / "data/examples/shapes.json")
    out = {}

    def run(name, pipe, image, tracks, config, **kwargs):
        losses = []
        result = generate(
            pipe,
            image,
            tracks,
            config,
            progress=False,
            callback=lambda info: losses.extend(info.get("losses", [])),
            **kwargs,
        )
        out[f"{name}_frames"] = result.frames
        out[f"{name}_latents"] = result.latents.float().numpy()
        out[f"{name}_losses"] = np.asarray(losses, dtype=np.float64)

    toy = get_preset("toy")
    run("toy_guided", toy_pipe, image, tracks, toy)
    run("toy_unguided", toy_pipe, image, None, toy)

    small = Image.fromarray(np.asarray(image.resize((64, 64))))
    tiny_tracks = parse_tracks(
        {"image_size": [64, 64], "tracks": [{"box": [8, 8, 24, 24], "path": [[16, 16], [40, 30]]}]}
    )
    tiny = toy.replace(
        height=32,
        width=32,
        num_inference_steps=4,
        optimised_steps=(1, 2),
        iterations=2,
        max_guidance_scale=3.0,
        min_guidance_scale=1.0,
        seed=3,
    )
    run("tiny_cfg_guided", tiny_pipe, small, tiny_tracks, tiny, record_step_features=True)

    frames = out["toy_unguided_frames"]
    features = probe.video_features(toy_pipe, frames, step=10, config=toy)
    for kind, layers in features.items():
        for layer, values in layers.items():
            out[f"video_features_{kind}_{layer}"] = values.numpy()
    run_ = prepare(tiny_pipe, small, tiny_tracks, tiny)
    with torch.no_grad():
        for layer, values in probe.loss_features(tiny_pipe, run_, run_.latents, step=1).items():
            out[f"step_features_{layer}"] = values.float().numpy()
    return out


if __name__ == "__main__":
    from sgi2v_lite.models import load_pipeline

    torch.set_num_threads(2)
    np.savez_compressed(SAVED, **outputs(load_pipeline("toy"), load_pipeline("tiny-random")))
    print({k: v.shape for k, v in np.load(SAVED).items()})
