"""sgi2v-lite: SG-I2V (Namekata et al., ICLR 2025), trajectory-controlled image-to-video on
Stable Video Diffusion with no finetuning, as a small package to learn from.

One module per idea, in layers; a module imports only from its own layer or those above it in
this list (tests/test_layout.py keeps it so, and keeps the imports free of circles):

  the method: SG-I2V's ideas
    tracks     the input format: boxes and trajectories, traj.npy import/export, the latent grid
    attention  the processor that records first-frame-aligned features; the hooked layers (Sec. 3.2)
    loss       the Gaussian-weighted box loss                                       (Sec. 3.3)
    frequency  the Butterworth low-pass and the frequency mix                       (Sec. 3.4)
    config     every knob, and the presets `reference`, `lite`, `toy`
  the sampler: the steps every path runs
    sampler    conditional_features, guidance_step, denoise_step; sample, generate (Sec. 3.3-3.4)
    memory     gradient checkpointing and offloading; which preset fits a GPU (modelled peaks)
  the models
    models     PROFILES; load_pipeline: svd, svd-xt, a folder, toy, tiny-random; load_model
  tools built on them
    probe      features of a video, PCA pictures, correspondence by nearest neighbours  (Sec. 3.2)
    video      images in, videos out (mp4, gif, npz)
    viz        boxes and trajectories drawn over frames, frame strips
    exercises  checks for the notebooks' exercises
    examples   example images and tracks by name: toy scenes for the toy, photos for SVD
    toy        the toy world: procedural videos, the training lab and its evaluation
  the applications
    cli        `python -m sgi2v_lite generate ...`
    widgets    the ipycanvas drawing widget
    explorer   click a point on frame 0, follow its features (naive, aligned; unguided, guided)
"""

from .config import PRESETS, SGI2VConfig, get_preset
from .errors import InputError
from .models import load_model, load_pipeline
from .sampler import GenerationResult, generate
from .tracks import Track, Tracks, load_tracks, parse_tracks

__version__ = "0.1.0"
__all__ = [
    "PRESETS",
    "SGI2VConfig",
    "get_preset",
    "InputError",
    "load_model",
    "load_pipeline",
    "GenerationResult",
    "generate",
    "Track",
    "Tracks",
    "load_tracks",
    "parse_tracks",
]
