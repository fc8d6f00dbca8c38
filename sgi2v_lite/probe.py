"""Looking inside the UNet: features of a video, PCA pictures, correspondence by nearest neighbours.

SG-I2V Sec. 3.2 (its Fig. 2): a spatial self-attention layer's output at frame j is built from
frame j's own keys and values, so the same object has *different* features in different frames
("naive" features); replacing K_j, V_j by frame 0's K_0, V_0 ("aligned" features) puts every frame
in frame 0's feature space, so the same content gets the same feature wherever it moved. This
module measures that: record either kind for a video, show them with one PCA basis for all frames,
and follow an object from frame 0 by nearest-neighbour matching.

    video_features(pipe, frames, step)         features of a known video (e.g. a toy-world clip)
    run_features(pipe, image, tracks, config, steps)  both kinds at some steps of a generation
    feature_bytes(unet, layers, frames, hw)    the system RAM one step of those features takes
    steps_within(ram_gb, step_bytes, steps)    which steps' features fit in system RAM
    pca_rgb(features)                          (F, C, h, w) -> (F, h, w, 3) colours, one basis
    pca_rgb_across([features, ...])            the same with one basis for several steps or runs
    similarity_maps(features, cell)            where one cell of frame 0 goes: cosine maps, best match
    match_object(features, box_cells)          the object's centre in every frame, by matching
    tracking_error(features, boxes_px, ...)    how far that matching is from the truth, per frame
    no_motion_error(boxes_px)                  the same for "it never moved": the baseline to beat
    colour_drift_and_contrast(colours, boxes)  does a PCA picture show the object, in one colour?
    tracking_by_step(pipe, clips, steps)       both kinds and the baseline, at each denoising step
    loss_features(pipe, run, latents, step)    the features of one latent, as the loss sees them
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .attention import record_features
from .config import SGI2VConfig
from .sampler import (
    Prepared,
    conditional_features,
    encode_conditioning,
    fresh_scheduler,
    generate,
    prepare,
    resolve_config,
)

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
    """System RAM that one denoising step's features of `layers` take as `run_features` keeps
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


@torch.no_grad()
def run_features(
    pipe, image, tracks, config: SGI2VConfig, steps, layers=None, kinds=KINDS, progress: bool = True
) -> tuple[np.ndarray, dict[str, dict[int, dict[str, torch.Tensor]]]]:
    """Features of ONE generation (guided when `tracks` are given and `config.guidance`), both
    kinds, at the denoising `steps`: for each kept step, the latent that the step's denoising pass
    sees (after the optimisation and the mix, in a guided run) goes once more through the
    conditional UNet with each kind recorded. So the guided run's naive and aligned features come
    from the same latents, and they can be set beside the unguided run's to see what the
    optimisation changed. Returns (frames (F, H, W, 3) uint8, kind -> step -> layer -> (F, C, h, w)
    float16 on the CPU). `progress`: the generation's progress bar."""
    config = resolve_config(pipe, config)
    layers = tuple(layers or config.feature_layers)
    seen = {}  # step -> the latent its denoising pass sees (1, F, C, h, w)

    def keep_latent(info):
        if info["step"] in steps:
            seen[info["step"]] = info["latents_mixed"] if info["optimised"] else info["latents"]

    with torch.enable_grad():  # the guided run's optimisation needs gradients
        result = generate(pipe, image, tracks, config, callback=keep_latent, progress=progress)
    run = prepare(pipe, image, tracks, config.replace(feature_layers=layers))
    features = {kind: {} for kind in kinds}
    for step, latents in sorted(seen.items()):
        for kind in kinds:  # the same truncated conditional pass the loss reads
            recorded = loss_features(pipe, run, latents, step, kind)
            features[kind][step] = {name: f.half().cpu() for name, f in recorded.items()}
    return result.frames, features


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


def pca_rgb_across(features: list[torch.Tensor], components: int = 3) -> list[np.ndarray]:
    """`pca_rgb` with ONE basis for several feature tensors of one layer (e.g. the same layer at
    several denoising steps, or unguided and guided), so that a colour means the same feature in all
    of them. features: list of (F, C, h, w) -> list of (F, h, w, components) in [0, 1]."""
    joined = pca_rgb(torch.cat([f.float() for f in features]), components)  # (sum F, h, w, components)
    return list(np.split(joined, np.cumsum([len(f) for f in features])[:-1]))


def similarity_maps(features: torch.Tensor, cell: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Where does the content of one cell of frame 0 go? The cosine similarity between the feature at
    `cell` (x, y) of frame 0 and every cell of every frame, and each frame's best match.
    features: (F, C, h, w). Returns (maps (F, h, w) in [-1, 1], best (F, 2) cells (x, y))."""
    x, y = cell
    normalised = F.normalize(features.float(), dim=1)  # (F, C, h, w)
    query = normalised[0, :, y, x]  # (C,)
    maps = torch.einsum("c,fchw->fhw", query, normalised).numpy()
    width = maps.shape[-1]
    flat = maps.reshape(len(maps), -1).argmax(1)
    return maps, np.stack([flat % width, flat // width], axis=1)


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


def no_motion_error(boxes_px: np.ndarray) -> np.ndarray:
    """The error of a tracker that says the object never moved: the distance in pixels between the
    true centre at frames 1..F-1 and at frame 0. Feature matching that does not beat it follows
    nothing. boxes_px (F, 4) -> (F-1,)."""
    centres = (np.asarray(boxes_px)[:, :2] + np.asarray(boxes_px)[:, 2:]) / 2  # (F, 2)
    return np.linalg.norm(centres[1:] - centres[0], axis=-1)


def colour_drift_and_contrast(colours: np.ndarray, box_cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a PCA picture shows of a moving object, in numbers. colours: (F, h, w, 3) in [0, 1]
    (`pca_rgb`, one basis for all frames); box_cells: (F, 4) the object's *true* boxes in cells.
    Returns (drift (F,), contrast (F,)): the distance (RGB, 0..1.73) of the object's mean colour at
    frame j from its mean colour at frame 0, and from the mean colour outside its box at frame j.
    Features that correspond show the object (contrast) in the same colour in every frame (no drift)."""
    inside, outside = [], []
    for frame, (x0, y0, x1, y1) in zip(colours, np.asarray(box_cells, int)):
        mask = np.zeros(frame.shape[:2], bool)
        mask[max(y0, 0) : y1, max(x0, 0) : x1] = True
        inside.append(frame[mask].mean(0))
        outside.append(frame[~mask].mean(0))
    inside, outside = np.array(inside), np.array(outside)  # (F, 3)
    return np.linalg.norm(inside - inside[0], axis=-1), np.linalg.norm(inside - outside, axis=-1)


def tracking_by_step(pipe, clips, steps, config: SGI2VConfig, progress: bool = True) -> dict[str, np.ndarray]:
    """Nearest-neighbour tracking of known objects at each denoising step in `steps`.

    clips: (scene, object index) pairs, e.g. `toy.world.moving_clips`; their frames are resized to
    the generation size and so are their boxes. Returns {"naive", "aligned", "no motion"} ->
    (len(steps), len(clips)) mean error in pixels over frames 1..F-1 (`tracking_error`,
    `no_motion_error`); the no-motion row is the same at every step. `progress`: a bar over the
    clips x steps UNet passes."""
    from tqdm.auto import tqdm

    config = resolve_config(pipe, config)
    latent_hw = (config.height // pipe.vae_scale_factor, config.width // pipe.vae_scale_factor)
    errors = {kind: np.zeros((len(steps), len(clips))) for kind in (*KINDS, "no motion")}
    bar = tqdm(total=len(clips) * len(steps), desc="UNet passes", disable=not progress)
    for c, (scene, index) in enumerate(clips):
        scale = np.array([config.width, config.height] * 2) / np.array(
            [scene.frames.shape[2], scene.frames.shape[1]] * 2
        )
        boxes = scene.boxes_px[index] * scale  # (F, 4) at the generation size
        errors["no motion"][:, c] = no_motion_error(boxes).mean()
        for s, step in enumerate(steps):
            features = video_features(pipe, scene.frames, step, config)
            for kind in KINDS:
                errors[kind][s, c] = tracking_error(features[kind], boxes, pipe.vae_scale_factor, latent_hw).mean()
            bar.update()
    bar.close()
    return errors


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
