"""Looking inside the UNet: features of a video, PCA pictures, correspondence by nearest neighbours.

SG-I2V Sec. 3.2 (its Fig. 2): a spatial self-attention layer's output at frame j is built from
frame j's own keys and values, so the same object has *different* features in different frames
("naive" features); replacing K_j, V_j by frame 0's K_0, V_0 ("aligned" features) puts every frame
in frame 0's feature space, so the same content gets the same feature wherever it moved. This
module measures that: record either kind for a video, show them with one PCA basis for all frames,
and follow an object from frame 0 by nearest-neighbour matching.

    video_features(pipe, frames, step)         features of a known video (e.g. a toy-world clip)
    denoising_features(pipe, image, config)    features at every denoising step of a generation
    feature_bytes(unet, layers, frames, hw)    the system RAM one step of those features takes
    steps_within(ram_gb, step_bytes, steps)    which steps' features fit in system RAM
    pca_rgb(features)                          (F, C, h, w) -> (F, h, w, 3) colours, one basis
    match_object(features, box_cells)          the object's centre in every frame, by matching
    loss_features(pipe, run, latents, step)    the features of one latent, as the loss sees them
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .attention import record_features, spatial_self_attention_layers
from .config import SGI2VConfig
from .sampler import Prepared, conditional_features, encode_conditioning, fresh_scheduler, generate, resolve_config

KINDS = ("naive", "aligned")


def frames_to_tensor(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 frames (F, H', W', 3) -> (F, 3, height, width) float in [-1, 1]."""
    video = torch.from_numpy(np.asarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
    if video.shape[-2:] != (height, width):
        video = F.interpolate(video, (height, width), mode="bilinear", antialias=True, align_corners=False)
    return video


@torch.no_grad()
def video_features(
    pipe, frames: np.ndarray, step: int, config: SGI2VConfig, layers=None, kinds=KINDS, seed: int = 0
) -> dict[str, dict[str, torch.Tensor]]:
    """Features of a *known* video, as the UNet sees it at denoising step `step`.

    The frames are encoded by the VAE, noised to the scheduler's sigma at `step` and passed once
    through the UNet, conditioned on frame 0 like a generation. Because the video is known (e.g. a
    toy-world clip with ground-truth boxes), correspondence can be checked against the truth.
    Returns kind -> layer -> (F, C, h, w) float32 on the CPU."""
    config = resolve_config(pipe, config)
    layers = tuple(layers or config.feature_layers)
    device = pipe.unet.device
    video = frames_to_tensor(frames, config.height, config.width).to(device, pipe.vae.dtype)  # (F, 3, H, W)
    config = config.replace(num_frames=len(video))
    latents = (
        pipe.vae.encode(video).latent_dist.mode()[None].float() * pipe.vae.config.scaling_factor
    )  # (1, F, C, h, w)
    generator = torch.Generator().manual_seed(seed)
    cond = encode_conditioning(pipe, video[:1].float().cpu(), config, generator)
    scheduler = fresh_scheduler(pipe, config.num_inference_steps)
    timestep = scheduler.timesteps[step]
    noisy = latents + scheduler.sigmas[step] * torch.randn(latents.shape, generator=generator).to(device)
    result = {}
    for kind in kinds:
        with record_features(pipe.unet, layers, len(video), tuple(latents.shape[-2:]), kind, stop_early=True) as rec:
            features = conditional_features(pipe.unet, rec, scheduler, noisy, timestep, cond)
        result[kind] = {name: f.float().cpu() for name, f in features.items()}
    return result


def feature_bytes(unet, layers, num_frames: int, latent_hw: tuple[int, int], bytes_per_value: int = 2) -> int:
    """System RAM that one denoising step's features of `layers` take as `denoising_features` keeps
    them (float16 on the CPU), per kind: sum over layers of F x C x h x w values. A layer's grid is
    the latent's, halved (rounding up) once per downsampling before its block; C is its width."""
    modules = dict(unet.named_modules())
    depth = len(unet.down_blocks) - 1  # the downsamplings (SVD: 72 x 128 -> 9 x 16 over 3)
    total = 0
    for name in layers:
        block, index = name.split(".")[:2]
        if block == "mid_block":
            halvings = depth
        else:
            halvings = int(index) if block == "down_blocks" else depth - int(index)
        h, w = latent_hw
        for _ in range(halvings):
            h, w = -(-h // 2), -(-w // 2)
        total += num_frames * modules[name].to_q.out_features * h * w * bytes_per_value
    return total


def steps_within(ram_gb: float, step_bytes: int, num_steps: int, every: int = 1) -> list[int]:
    """Denoising steps to keep features of: every `every`-th of `num_steps`, or, when those would
    take more than `ram_gb` of system RAM at `step_bytes` each, as many as fit, spread evenly from
    the first step to the last kept one (Colab's free T4 has 12.7 GB of RAM in all)."""
    steps = list(range(0, num_steps, every))
    fit = max(1, int(ram_gb * 2**30 // step_bytes))
    if len(steps) <= fit:
        return steps
    picks = np.linspace(0, len(steps) - 1, fit).round().astype(int)
    return [steps[i] for i in sorted(set(picks))]


def denoising_features(
    pipe, image, config: SGI2VConfig, layers=None, kinds=KINDS, steps=None
) -> tuple[np.ndarray, dict[str, dict[int, dict[str, torch.Tensor]]]]:
    """Features at the denoising steps of an *unguided* generation from `image`, one run per kind
    (the same seed, so the same video: recording does not change the UNet's output).

    layers: default all spatial self-attention layers. steps: which steps to keep (default all).
    Returns (frames (F, H, W, 3) uint8, kind -> step -> layer -> (F, C, h, w) float16 on the CPU)."""
    layers = tuple(layers or spatial_self_attention_layers(pipe.unet))
    config = config.replace(guidance=False, feature_layers=layers)
    keep = set(range(config.num_inference_steps) if steps is None else steps)
    collected = {}
    for kind in kinds:
        per_step = collected[kind] = {}

        def keep_features(info, per_step=per_step):
            if info["step"] in keep:
                per_step[info["step"]] = {name: f.half().cpu() for name, f in info["step_features"].items()}

        result = generate(
            pipe,
            image,
            None,
            config.replace(feature_kind=kind),
            callback=keep_features,
            record_step_features=True,
            progress=False,
        )
    return result.frames, collected


def pca_rgb(features: torch.Tensor, components: int = 3, mask: np.ndarray | None = None) -> np.ndarray:
    """(F, C, h, w) features -> (F, h, w, components) in [0, 1]: ONE PCA basis fitted on the tokens
    of all frames together (so a colour means the same feature in every frame), each component
    stretched between its 1st and 99th percentile. `mask` (F, h, w) bool: fit on those tokens only."""
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    frames, channels, height, width = features.shape
    tokens = features.float().permute(0, 2, 3, 1).reshape(-1, channels).numpy()  # (F*h*w, C)
    fit_on = tokens if mask is None else tokens[np.asarray(mask).reshape(-1)]
    # one BLAS thread: numpy's OpenBLAS threads spinning beside torch's OpenMP threads can stall a
    # 2-core machine for minutes (seen in CI); the fit is small either way
    with threadpool_limits(limits=1):
        projected = PCA(components, random_state=0).fit(fit_on).transform(tokens)  # (F*h*w, components)
    low, high = np.percentile(projected, [1, 99], axis=0)
    colours = np.clip((projected - low) / np.maximum(high - low, 1e-8), 0, 1)
    return colours.reshape(frames, height, width, components)


def match_object(features: torch.Tensor, box_cells0) -> np.ndarray:
    """Follow the content of a frame-0 box by nearest neighbours in feature space.

    features:   (F, C, h, w), e.g. `loss.feature_map` of one kind on the latent grid.
    box_cells0: (x0, y0, x1, y1) cells of the object at frame 0 (exclusive ends).
    For each frame j, every cell inside the box finds its most similar cell (cosine) in frame j;
    the object's displacement is the median of those offsets. Returns displacements (F, 2) in
    cells (x, y) from frame 0 (row 0 is zero)."""
    x0, y0, x1, y1 = (int(v) for v in box_cells0)
    normalised = F.normalize(features.float(), dim=1)  # (F, C, h, w)
    frames, channels, height, width = normalised.shape
    source = normalised[0, :, y0:y1, x0:x1].reshape(channels, -1).T  # (n, C)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    source_xy = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (n, 2)
    displacements = [np.zeros(2)]
    for j in range(1, frames):
        similarity = source @ normalised[j].reshape(channels, -1)  # (n, h*w)
        best = similarity.argmax(dim=1).numpy()
        match_xy = np.stack([best % width, best // width], axis=1)
        displacements.append(np.median(match_xy - source_xy, axis=0))
    return np.stack(displacements)


def tracking_error(features: dict[str, torch.Tensor], boxes_px: np.ndarray, cell_px: int, latent_hw) -> np.ndarray:
    """How well nearest-neighbour matching of `features` (layer -> (F, C, h, w)) follows an object
    whose true boxes are `boxes_px` (F, 4): the distance in pixels, per frame 1..F-1, between the
    true centre and frame 0's centre moved by the matched displacement. The layers are upsampled to
    the latent grid `latent_hw` (cells of `cell_px` pixels), as the loss does. Returns (F-1,)."""
    from .loss import feature_map
    from .tracks import boxes_to_grid

    cells, _ = boxes_to_grid(np.asarray(boxes_px)[None], cell_px, latent_hw)
    displacements_px = match_object(feature_map(features, latent_hw), cells[0, 0]) * cell_px  # (F, 2)
    centres = (np.asarray(boxes_px)[:, :2] + np.asarray(boxes_px)[:, 2:]) / 2  # (F, 2)
    predicted = centres[0] + displacements_px
    return np.linalg.norm(predicted[1:] - centres[1:], axis=-1)


def loss_features(
    pipe, run: Prepared, latents: torch.Tensor, step: int, kind: str = "aligned"
) -> dict[str, torch.Tensor]:
    """The features the loss sees for latent z_t (1, F, C, h, w) at denoising step `step` of a
    prepared run (`sampler.prepare`): `sampler.conditional_features`, truncated, as `optimise_latent`
    runs it. Returns layer -> (F, C, h, w), still attached to `latents` if it requires grad."""
    scheduler = fresh_scheduler(pipe, run.config.num_inference_steps)
    layers = run.config.feature_layers
    with record_features(pipe.unet, layers, latents.shape[1], run.latent_hw, kind, stop_early=True) as rec:
        return conditional_features(pipe.unet, rec, scheduler, latents, scheduler.timesteps[step], run.cond)


def feature_explorer(frames: np.ndarray, features: dict[str, dict[int, dict[str, torch.Tensor]]]):
    """An ipywidgets explorer of `denoising_features`' output: sliders for the denoising step and the
    frame, a menu for the layer; shows the generated frame and the PCA colours of each kind of
    feature (one basis per step, layer and kind, fitted on all frames). Returns the widget."""
    import functools

    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    kinds = list(features)
    steps = sorted(features[kinds[0]])
    layers = list(features[kinds[0]][steps[0]])

    @functools.lru_cache(maxsize=64)
    def colours(kind, step, layer):
        return pca_rgb(features[kind][step][layer])

    def show(step, layer, frame):
        figure, axes = plt.subplots(1, 1 + len(kinds), figsize=(2.6 * (1 + len(kinds)), 2.8))
        axes[0].imshow(frames[frame])
        axes[0].set_title(f"frame {frame}", fontsize=9)
        for axis, kind in zip(axes[1:], kinds):
            axis.imshow(colours(kind, step, layer)[frame], interpolation="nearest")
            axis.set_title(f"{kind} features, step {step}", fontsize=9)
        for axis in axes:
            axis.set_xticks([])
            axis.set_yticks([])
        figure.suptitle(layer, fontsize=8)
        figure.tight_layout()
        plt.show()

    step = widgets.SelectionSlider(options=steps, value=steps[len(steps) // 3], description="step")
    layer = widgets.Dropdown(
        options=layers,
        value=layers[min(len(layers) - 1, len(layers) // 2)],
        description="layer",
        layout=widgets.Layout(width="520px"),
    )
    frame = widgets.IntSlider(min=0, max=len(frames) - 1, value=len(frames) - 1, description="frame")
    output = widgets.interactive_output(show, {"step": step, "layer": layer, "frame": frame})
    return widgets.VBox([widgets.HBox([step, frame]), layer, output])
