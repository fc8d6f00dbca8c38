"""sgi2v-lite: SG-I2V (Namekata et al., ICLR 2025), trajectory-controlled image-to-video on
Stable Video Diffusion with no finetuning, as a small package to learn from.

One module per idea:
    tracks     the input format: boxes and trajectories, traj.npy import/export, the latent grid
    attention  the attention processor that records first-frame-aligned features   (Sec. 3.2)
    loss       the Gaussian-weighted box loss                                       (Sec. 3.3)
    frequency  the Butterworth low-pass and the frequency mix                       (Sec. 3.4)
    sampler    the guided Euler sampling loop with a callback                       (Sec. 3.3-3.4)
    config     every knob, and the presets `reference`, `lite`, `toy`
    memory     gradient checkpointing and offloading; which preset fits a GPU (modelled peaks)
    models     load_pipeline: svd, svd-xt, a local folder, toy, tiny-random; load_model for notebooks
    probe      features of a video, PCA pictures, correspondence by nearest neighbours  (Sec. 3.2)
    exercises  checks for the notebooks' exercises
    video      images in, videos out (mp4, gif, npz)
    viz        boxes and trajectories drawn over frames, frame strips
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
