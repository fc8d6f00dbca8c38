"""Load a `StableVideoDiffusionPipeline`: the real SVD, a local copy, the toy world, or a tiny test model.

    load_pipeline("svd")          stabilityai/stable-video-diffusion-img2vid (14 frames), from the hub
    load_pipeline("svd-xt")       stabilityai/stable-video-diffusion-img2vid-xt (25 frames)
    load_pipeline("path/to/dir")  any folder written by `pipe.save_pretrained(...)`
    load_pipeline("toy")          the project's toy-world model (see `TOY_MODEL_DIR`)
    load_pipeline("tiny-random")  a tiny random pipeline for tests (diffusers' get_dummy_components)

Every name ends in the same diffusers classes, so the sampler never knows which model it drives.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import InputError


@dataclass(frozen=True)
class ModelProfile:
    """What the package knows of a model before loading it: the one table the CLI, the drawing
    widget and `load_model` read (sizes and layers of a *loaded* model come from its configs)."""

    source: str | None  # the hub repository, or None (shipped in data/ or built here)
    num_frames: int  # the frames its UNet was trained on
    native_size: tuple[int, int]  # (height, width) of its training videos
    preset: str | None  # its settings preset; None: chosen by GPU memory (`default_config`)


PROFILES = {
    "svd": ModelProfile("stabilityai/stable-video-diffusion-img2vid", 14, (576, 1024), None),
    "svd-xt": ModelProfile("stabilityai/stable-video-diffusion-img2vid-xt", 25, (576, 1024), None),
    "toy": ModelProfile(None, 8, (64, 64), "toy"),
    "tiny-random": ModelProfile(None, 4, (32, 32), "toy"),
}
HUB_MODELS = {name: profile.source for name, profile in PROFILES.items() if profile.source}
MODEL_NAMES = ("auto", *PROFILES)
TOY_MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "toy-svd"

# SVD's published configs (the diffusers classes' defaults, written out so that the full-size
# architecture can be built without a download: on the meta device in tests, random on a GPU).
SVD_UNET_CONFIG = dict(
    sample_size=96,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    block_out_channels=(320, 640, 1280, 1280),
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=768,
    layers_per_block=2,
    cross_attention_dim=1024,
    transformer_layers_per_block=1,
    num_attention_heads=(5, 10, 20, 20),
    num_frames=14,
)
SVD_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    sample_size=768,
    scaling_factor=0.18215,
    force_upcast=True,
)
SVD_IMAGE_ENCODER_CONFIG = dict(  # CLIP ViT-H/14
    hidden_size=1280,
    intermediate_size=5120,
    projection_dim=1024,
    num_hidden_layers=32,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
)
SVD_SCHEDULER_CONFIG = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    interpolation_type="linear",
    num_train_timesteps=1000,
    prediction_type="v_prediction",
    sigma_max=700.0,
    sigma_min=0.002,
    steps_offset=1,
    timestep_spacing="leading",
    timestep_type="continuous",
    use_karras_sigmas=True,
)


def svd_scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)


@contextlib.contextmanager
def _quiet_transformers():
    """Without torchvision, transformers warns once that `CLIPImageProcessor` falls back to its
    PIL backend. That backend is the one we want (there is no CPU torchvision here): hide the
    message, and the loading progress bars, while diffusers and transformers load, then restore."""
    import diffusers
    import transformers

    verbosity = transformers.logging.get_verbosity()
    diffusers_verbosity = diffusers.utils.logging.get_verbosity()
    bars_were_on = diffusers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    diffusers.utils.logging.set_verbosity_error()  # "Couldn't connect to the Hub ...": the error says it in one line
    diffusers.utils.logging.disable_progress_bar()  # "Loading pipeline components": noise in a notebook
    transformers.utils.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():  # diffusers 0.42 renames from_pretrained's torch_dtype (still accepted)
            warnings.filterwarnings("ignore", message=".*torch_dtype.*deprecated", category=FutureWarning)
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        diffusers.utils.logging.set_verbosity(diffusers_verbosity)
        if bars_were_on:
            diffusers.utils.logging.enable_progress_bar()
            transformers.utils.logging.enable_progress_bar()


def build_pipeline(unet_config: dict, vae_config: dict, image_encoder_config: dict, seed: int = 0):
    """A `StableVideoDiffusionPipeline` with random weights built from configs (no download); its
    CLIP feature extractor works at the image encoder's input size."""
    with _quiet_transformers():
        from diffusers import (
            AutoencoderKLTemporalDecoder,
            StableVideoDiffusionPipeline,
            UNetSpatioTemporalConditionModel,
        )
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(**unet_config)
    vae = AutoencoderKLTemporalDecoder(**vae_config)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**image_encoder_config))
    size = image_encoder_config["image_size"]
    feature_extractor = CLIPImageProcessor(crop_size=size, size=size)
    return StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=svd_scheduler(), feature_extractor=feature_extractor
    )


def save_random_svd(folder, dtype: torch.dtype = torch.float16, seed: int = 0) -> dict[str, int]:
    """SVD's full-size architecture (the published UNet, temporal-decoder VAE and CLIP ViT-H/14
    configs above) with random weights, saved with `save_pretrained` to `folder` in `dtype` (float16:
    4.3 GB, like the hub's fp16 variant). `load_pipeline(folder)` then loads it exactly as it loads a
    saved real checkpoint: the real-SVD code paths run without the gated weights. Building takes
    about 9 GB of memory and a minute on 2 cores. Returns the parameter count of each component."""
    pipe = build_pipeline(SVD_UNET_CONFIG, SVD_VAE_CONFIG, SVD_IMAGE_ENCODER_CONFIG, seed=seed)
    components = ("unet", "vae", "image_encoder")
    counts = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in components}
    with _quiet_transformers():
        pipe.to(dtype=dtype)
        pipe.save_pretrained(folder)
    return counts


def tiny_random_pipeline(seed: int = 0):
    """The tiny random pipeline of diffusers' SVD tests (get_dummy_components), 2 frames of 64 x 64
    by default: a latent of 32 x 32 (VAE factor 2), one attention up block. Runs in a second on a CPU."""
    unet = dict(
        sample_size=32,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64),
        layers_per_block=2,
        cross_attention_dim=32,
        num_attention_heads=8,
        addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=96,
        num_frames=4,
    )
    vae = dict(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        latent_channels=4,
    )
    clip = dict(
        hidden_size=32,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        intermediate_size=37,
        patch_size=4,
    )
    return build_pipeline(unet, vae, clip, seed=seed)


def default_device_and_dtype(device=None, dtype=None) -> tuple[str, torch.dtype]:
    """CUDA in float16 when there is a GPU (SVD's weights ship in fp16), else the CPU in float32."""
    device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return device, dtype or (torch.float16 if device.startswith("cuda") else torch.float32)


def auto_model_name() -> str:
    """What `MODEL = "auto"` means: the environment variable SGI2V_MODEL if set (e.g. "tiny-random"
    for a quick dry run of the notebooks), else the real SVD on a CUDA GPU and the toy model elsewhere."""
    return os.environ.get("SGI2V_MODEL") or ("svd" if torch.cuda.is_available() else "toy")


def profile_name(model) -> str:
    """The `PROFILES` entry of a model: a name ("auto" resolved here, the one place), a folder
    saved with save_pretrained (by its UNet's config: `memory.model_key`) or a loaded pipeline."""
    import json

    from .memory import model_key

    if hasattr(model, "unet"):  # a loaded pipeline
        return model_key(model.unet.config)
    name = auto_model_name() if str(model) == "auto" else str(model)
    if name in PROFILES:
        return name
    if (Path(name) / "unet" / "config.json").is_file():
        return model_key(json.loads((Path(name) / "unet" / "config.json").read_text()))
    return "svd"


def default_config(model, device=None, preset: str | None = None):
    """The settings a model gets when none are asked for: the one place they are chosen, for the
    CLI, the drawing widget and `load_model`. `model`: a name ("auto", "svd", "toy", ...), a folder
    saved with save_pretrained, or a loaded pipeline. A model whose profile names a preset gets it
    (the toy models: `toy`); SVD and SVD-XT the largest setting whose *modelled* peak GPU memory
    (benchmarks/MEMORY.md), plus a margin, fits the GPU's usable memory (`memory.choose_settings`,
    which warns when even the smallest does not fit). `preset`: that preset, with the memory levers
    (checkpointing, offloading) it needs on this GPU. Returns an `SGI2VConfig` (sizes and layers
    still the preset's: `sampler.resolve_config` fills them from the loaded model)."""
    from .config import get_preset
    from .memory import choose_settings, usable_gpu_gb

    name = profile_name(model)
    if PROFILES[name].preset is not None:
        return get_preset(preset or PROFILES[name].preset)
    device = device or (model.unet.device if hasattr(model, "unet") else None)
    preset, changes = choose_settings(name, usable_gpu_gb(device), preset)
    return get_preset(preset).replace(**changes)


def _causes(err: BaseException):
    """The exception and every exception it was raised from or during (diffusers wraps the hub's)."""
    seen = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def hub_error_message(err: BaseException, source: str) -> str:
    """One line saying why a model could not be loaded and what to do, for the hub's failures:
    a gated model (SVD's checkpoints: accept the licence and log in), no network and no cached copy,
    a full disk, a missing repository or file. Anything else: its type and first line."""
    import errno

    from huggingface_hub import errors as hub

    causes = _causes(err)
    kinds = tuple(type(e) for e in causes)
    page = f"https://huggingface.co/{source}"
    where = f"could not load model {source!r}"
    if any(issubclass(k, hub.GatedRepoError) for k in kinds):
        return (
            f"{where}: its weights are gated. Accept the licence at {page} (logged in), then log in here: "
            "huggingface_hub.notebook_login() on Colab (or a token HF_TOKEN in Colab's secrets), "
            "`hf auth login` elsewhere"
        )
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in causes) or "No space left" in str(err):
        return (
            f"{where}: the disk is full (SVD's fp16 weights need about 5 GB in the hub's cache). Free space, or "
            "point HF_HOME at a larger disk"
        )
    if any(issubclass(k, hub.RepositoryNotFoundError) for k in kinds):
        return f"{where}: no such repository on the hub, or it is private: check the name ({page}) and log in"
    if any(issubclass(k, (hub.RevisionNotFoundError, hub.RemoteEntryNotFoundError)) for k in kinds):
        return f"{where}: a file or revision is missing from the repository: {str(err).splitlines()[0]}"
    offline = (hub.OfflineModeIsEnabled, hub.LocalEntryNotFoundError, ConnectionError, TimeoutError)
    if any(issubclass(k, offline) for k in kinds) or "not fully cached locally" in str(err):
        return (
            f"{where}: the hub cannot be reached and no copy is cached here. Connect to the internet (and unset "
            "HF_HUB_OFFLINE), or pass a folder written by save_pretrained"
        )
    return f"{where}: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}"


def load_pipeline(
    name_or_path: str = "toy", device: str | torch.device | None = None, dtype: torch.dtype | None = None
):
    """A `StableVideoDiffusionPipeline` on `device` in `dtype` (defaults: `default_device_and_dtype`);
    "auto" is `auto_model_name()`; unknown names raise `InputError`."""
    device, dtype = default_device_and_dtype(device, dtype)
    with _quiet_transformers():
        from diffusers import StableVideoDiffusionPipeline

    name = auto_model_name() if str(name_or_path) == "auto" else str(name_or_path)
    if name == "tiny-random":
        pipe = tiny_random_pipeline()
    elif name == "toy":
        if not (TOY_MODEL_DIR / "model_index.json").is_file():
            raise InputError(
                f"the toy model's weights are missing from {TOY_MODEL_DIR}: `make toy-model` retrains them"
            )
        with _quiet_transformers():
            pipe = StableVideoDiffusionPipeline.from_pretrained(TOY_MODEL_DIR, torch_dtype=dtype)
    elif name in HUB_MODELS or Path(name).is_dir():
        source = HUB_MODELS.get(name, name)
        if Path(name).is_dir() and not (Path(name) / "model_index.json").is_file():
            raise InputError(f"folder {name} holds no model_index.json: not a pipeline saved with save_pretrained")
        variant = "fp16" if name in HUB_MODELS and dtype == torch.float16 else None
        try:
            with _quiet_transformers():
                pipe = StableVideoDiffusionPipeline.from_pretrained(source, torch_dtype=dtype, variant=variant)
        except Exception as err:  # gated, no network, disk full, missing files: say which model and what to do
            raise InputError(hub_error_message(err, source)) from err
    else:
        raise InputError(
            f"unknown model {name!r}: use one of {', '.join(MODEL_NAMES)} or a folder saved with save_pretrained"
        )
    with _quiet_transformers():  # diffusers' notes on casting and on float16 on a CPU (slow there, but it runs)
        if pipe.unet.dtype != dtype:  # the random pipelines are built in float32
            pipe.to(dtype=dtype)
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_model(name_or_path: str = "auto", device=None, dtype=None, preset: str | None = None):
    """The notebooks' one line: (pipeline, config), the config being the settings that fit the model
    and its GPU (`default_config`; `preset` to pick one, with the memory levers it needs there)
    with its sizes, frame count and feature layers filled in."""
    from .sampler import resolve_config

    pipe = load_pipeline(name_or_path, device=device, dtype=dtype)
    return pipe, resolve_config(pipe, default_config(pipe, preset=preset))
