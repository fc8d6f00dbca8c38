"""SG-I2V on the toy world: the paper's table in miniature.

    python -m sgi2v_lite evaluate --model toy --scenes N [--seed S] [--rows default,unguided,...]

For each held-out scene (seeds from `train.EVAL_SEED_OFFSET`, no camera motion) one object is
controlled with a target trajectory that differs from anything the scene would do by itself: a
straight line in another direction, a curve, or a static anchor. Each row generates every scene
with one setting and reports:

- ObjMC (px): mean Euclidean distance between the target centre and the centre tracked in the
  generated video over frames 1..F-1. The tracker does not use the model: normalised
  cross-correlation of the first frame's box, searched over the whole frame.
- integrity: how much the controlled object still looks like itself: the IoU of its colour mask
  with frame 0's, at the tracked position (1 = moved whole; smears, splits and fading lower it),
  the tracker's peak correlation (1 = identical), and the object's colour area relative to
  frame 0 (1 = same size; copies raise it, fading lowers it). Row "real videos" gives both on the
  scenes' own ground-truth videos, the level a whole object reaches; row "real videos through the
  VAE" on those videos encoded and decoded, the most a generated video can reach, since its
  latents go through the same decoder (`through_vae`).
- new content: the check that no new objects appear. Pixels per frame whose colour is neither the
  scene's background at that pixel nor any of its objects' colours, in blobs at least 3 pixels
  across and 12 in area (0 on real videos; new objects, blotches and recoloured objects raise it;
  a copy of an object in that object's own colour does not: the area ratio catches that one).
- quality: high-frequency energy (mean |Laplacian| relative to the real videos: 1 = the same,
  below 1 = blur, above 1 = noise and artefacts; distance from 1 is what counts) and the colour
  histogram distance to the real videos (0 = same statistics).

A lower ObjMC only counts as success if integrity stays near the real videos' level: a smeared
object can have its centroid in the right place (see the issue's prototype notes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..tracks import Track, Tracks
from .train import EVAL_SEED_OFFSET
from .world import TOY_SIZE, Scene, make_scene

TARGET_KINDS = ("line", "curve", "static")


# ------------------------------------------------------------------------------ the tracker
def _window_sums(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sum of `image` (H, W) over every h x w window: (H-h+1, W-w+1), from an integral image."""
    integral = np.pad(image, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]


def track_template(frames: np.ndarray, box_px) -> tuple[np.ndarray, np.ndarray]:
    """Track the content of `box_px` (x0, y0, x1, y1) of frame 0 through every frame by zero-mean
    normalised cross-correlation over the whole frame (the model is not involved).
    Returns (centres (F, 2) px, peak correlation (F,) in [-1, 1])."""
    from scipy.signal import fftconvolve

    frames = np.asarray(frames, dtype=np.float64) / 255
    height, width = frames.shape[1:3]
    x0, y0, x1, y1 = (int(round(v)) for v in box_px)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    template = frames[0, y0:y1, x0:x1]  # (h, w, 3)
    h, w = template.shape[:2]
    count = template.size
    template = template - template.mean()
    template_norm = np.sqrt((template**2).sum()) + 1e-9
    centres, scores = [], []
    for frame in frames:
        # sum over the window of frame * template (the template is zero-mean, so no mean term)
        numerator = sum(fftconvolve(frame[..., c], template[::-1, ::-1, c], mode="valid") for c in range(3))
        window_sum = _window_sums(frame.sum(-1), h, w)
        window_energy = _window_sums((frame**2).sum(-1), h, w) - window_sum**2 / count
        correlation = numerator / (np.sqrt(np.maximum(window_energy, 0)) * template_norm + 1e-9)
        row, col = np.unravel_index(np.argmax(correlation), correlation.shape)
        centres.append((col + w / 2, row + h / 2))
        scores.append(float(correlation[row, col]))
    return np.array(centres), np.array(scores)


def colour_distance(frames: np.ndarray, colour) -> np.ndarray:
    """RGB distance in [0, 1] units between uint8 frames (F, H, W, 3) and `colour` in [0, 1]: one
    RGB triple, or an array that broadcasts against the frames (e.g. a background per frame).
    Returns (F, H, W)."""
    return np.linalg.norm(np.asarray(frames, np.float32) / 255 - np.asarray(colour, np.float32), axis=-1)


def colour_area(frames: np.ndarray, colour, tolerance: float = 0.18) -> np.ndarray:
    """Pixels per frame within `tolerance` (RGB distance in [0, 1] units) of an object's colour: (F,)."""
    return (colour_distance(frames, colour) < tolerance).sum(axis=(1, 2)).astype(np.float64)


def shape_iou(frames: np.ndarray, box_px, centres: np.ndarray, colour, tolerance: float = 0.18) -> np.ndarray:
    """Object integrity per frame: IoU between the object's colour mask in its frame-0 box and the
    mask in the same-size box around the tracked centre of each frame, (F,). 1 for an object that
    moves whole; smearing, stretching, splitting and fading all lower it."""
    half_w, half_h = (box_px[2] - box_px[0]) / 2, (box_px[3] - box_px[1]) / 2
    pad = int(np.ceil(max(half_w, half_h))) + 1
    masks = colour_distance(frames, colour) < tolerance  # (F, H, W)
    masks = np.pad(masks, ((0, 0), (pad, pad), (pad, pad)))
    crops = []
    for mask, (cx, cy) in zip(masks, centres):
        x0, y0 = int(round(cx - half_w)) + pad, int(round(cy - half_h)) + pad
        crops.append(mask[y0 : y0 + int(round(2 * half_h)), x0 : x0 + int(round(2 * half_w))])
    first = crops[0]
    return np.array([(first & c).sum() / max((first | c).sum(), 1) for c in crops])


def new_content_mask(frames: np.ndarray, scene: Scene, tolerance: float = 0.25, min_blob_px: int = 12) -> np.ndarray:
    """What the scene cannot explain, (F, H, W) bool: pixels whose colour is further than `tolerance`
    (RGB distance in [0, 1] units) from both the scene's background at that pixel and every
    object's colour. A 3 x 3 opening drops the one- and two-pixel blends along every edge, and
    blobs under `min_blob_px` pixels are dropped. Empty on the scene's own frames; a new object, a
    blotch left behind or an object that changes colour shows in it. Colour alone decides, so a
    copy of an object in its own colour is explained (`colour_area` counts that one)."""
    from scipy import ndimage

    distance = colour_distance(frames, scene.backgrounds / 255)  # (F, H, W)
    for obj in scene.objects:
        distance = np.minimum(distance, colour_distance(frames, obj.colour))
    masks = []
    for unexplained in distance > tolerance:
        unexplained = ndimage.binary_opening(unexplained, np.ones((3, 3), bool))
        labels, count = ndimage.label(unexplained)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)  # (count + 1,) px per blob, 0 = none
        masks.append(unexplained & (sizes[labels] >= min_blob_px))
    return np.stack(masks)


def new_content(frames: np.ndarray, scene: Scene, **mask_options) -> np.ndarray:
    """Pixels per frame in `new_content_mask`, (F,): the issue's check that no new objects appear."""
    return new_content_mask(frames, scene, **mask_options).sum(axis=(1, 2)).astype(np.float64)


def sharpness(frames: np.ndarray) -> float:
    """Mean absolute Laplacian of the grey frames: falls when frames blur."""
    grey = np.asarray(frames, np.float32).mean(-1) / 255
    laplacian = (
        -4 * grey[:, 1:-1, 1:-1] + grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
    )
    return float(np.abs(laplacian).mean())


def histogram_distance(frames: np.ndarray, reference: np.ndarray, bins: int = 16) -> float:
    """Mean L1 distance between per-channel colour histograms (each sums to 1) of the two videos' frames."""

    def histograms(video):
        return np.stack(
            [
                np.stack([np.histogram(f[..., c], bins, (0, 256))[0] / f[..., c].size for c in range(3)])
                for f in np.asarray(video)
            ]
        )

    return float(np.abs(histograms(frames) - histograms(reference)).sum(axis=(1, 2)).mean() / 3)


# ------------------------------------------------------------------------------- the targets
@dataclass
class EvalCase:
    scene: Scene
    controlled: int  # index of the controlled object
    target_centres: np.ndarray  # (F, 2)
    kind: str

    def tracks(self) -> Tracks:
        box = tuple(float(v) for v in self.scene.boxes_px[self.controlled, 0])
        size = (self.scene.frames.shape[2], self.scene.frames.shape[1])
        return Tracks(size, [Track(box=box, path=[tuple(map(float, c)) for c in self.target_centres])])


def _boxes_overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def make_case(index: int, seed: int = 0, size: int = TOY_SIZE, num_frames: int = 8) -> EvalCase:
    """Held-out scene `index` with a target that differs from the object's own motion. The
    controlled object is the largest one whose first box touches no other object (so that the
    first-frame template holds that object alone); scenes without one are skipped."""
    for attempt in range(100):
        scene_seed = EVAL_SEED_OFFSET + seed * 100_000 + index * 100 + attempt
        scene = make_scene(scene_seed, size, num_frames, camera="none")
        first_boxes = scene.boxes_px[:, 0]
        free = [
            n
            for n in range(len(scene.objects))
            if not any(_boxes_overlap(first_boxes[n], first_boxes[m]) for m in range(len(scene.objects)) if m != n)
        ]
        if free:
            break
    rng = np.random.default_rng(scene_seed)
    controlled = max(free, key=lambda n: scene.objects[n].size_px)
    obj = scene.objects[controlled]
    start = scene.centres_px[controlled, 0]
    half = obj.size_px / 2
    kind = TARGET_KINDS[index % len(TARGET_KINDS)]
    speed = float(np.hypot(*obj.velocity_px))
    if kind == "static" and speed == 0:
        kind = "line"  # holding a still object still tests nothing
    t = np.arange(num_frames)[:, None] / (num_frames - 1)  # (F, 1) in [0, 1]
    if kind == "static":
        target = np.repeat(start[None], num_frames, axis=0)
    else:
        # head for the side with the most room, at least 60 degrees away from the natural direction
        natural = np.arctan2(obj.velocity_px[1], obj.velocity_px[0])
        room = {
            0.0: size - half - start[0],
            np.pi: start[0] - half,
            np.pi / 2: size - half - start[1],
            -np.pi / 2: start[1] - half,
        }
        candidates = sorted(room, key=lambda a: -room[a])
        if speed > 0:
            candidates = [a for a in candidates if abs(np.angle(np.exp(1j * (a - natural)))) > np.pi / 3] or candidates
        angle = candidates[0]
        distance = min(room[angle], rng.uniform(0.25, 0.4) * size)
        along = np.array([np.cos(angle), np.sin(angle)])
        target = start + t * distance * along  # (F, 2)
        if kind == "curve":  # bow sideways by up to 30 % of the distance
            sideways = np.array([-along[1], along[0]]) * rng.choice([-1, 1])
            target = target + 4 * t * (1 - t) * 0.3 * distance * sideways
    target = np.clip(target, half, size - half)
    return EvalCase(scene=scene, controlled=controlled, target_centres=target, kind=kind)


# ------------------------------------------------------------------------------ the metrics
def score_video(frames: np.ndarray, case: EvalCase) -> dict:
    """Scores of a generated video (F, H, W, 3) for `case`; a video of another size than the scene
    (e.g. a real SVD's) is resized to the scene's first."""
    frames = np.asarray(frames)
    if frames.shape[1:3] != case.scene.frames.shape[1:3]:
        from PIL import Image

        height, width = case.scene.frames.shape[1:3]
        frames = np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in frames])
    box = case.scene.boxes_px[case.controlled, 0]
    centres, correlation = track_template(frames, box)
    colour = case.scene.objects[case.controlled].colour
    area = colour_area(frames, colour)
    return dict(
        objmc=float(np.linalg.norm(centres[1:] - case.target_centres[1:], axis=-1).mean()),
        correlation=float(correlation[1:].mean()),
        shape_iou=float(shape_iou(frames, box, centres, colour)[1:].mean()),
        area_ratio=float((area[1:] / max(area[0], 1)).mean()),
        new_content=float(new_content(frames, case.scene)[1:].mean()),
        sharpness=sharpness(frames),
        histogram=histogram_distance(frames, case.scene.frames),
        real_sharpness=sharpness(case.scene.frames),
    )


@torch.no_grad()
def through_vae(pipe, frames: np.ndarray, chunk_size: int) -> np.ndarray:
    """Real frames (F, H, W, 3) uint8 encoded and decoded by the pipeline's VAE, as a generated
    video's latents are decoded: the best any latent video can look, so the ceiling of every
    figure of a generated one (the "real videos through the VAE" row)."""
    from ..probe import frames_to_tensor
    from ..sampler import decode

    vae = pipe.vae
    frames = np.asarray(frames)
    images = frames_to_tensor(frames, *frames.shape[1:3]).to(vae.device, vae.dtype)  # (F, 3, H, W) in [-1, 1]
    latents = vae.encode(images).latent_dist.mode() * vae.config.scaling_factor  # (F, C, h, w)
    return decode(pipe, latents[None], chunk_size)


# Row names hold no commas: `evaluate --rows` takes a comma-separated list of them.
ROWS = {
    "unguided": dict(guidance=False),
    "SG-I2V (toy defaults)": {},
    "naive features": dict(feature_kind="naive"),
    "no frequency mix": dict(frequency_mix=False),
    "layer: up_blocks.1.attentions.0 (16x16)": dict(
        feature_layers=("up_blocks.1.attentions.0.transformer_blocks.0.attn1",)
    ),
    "layer: up_blocks.0.attentions.1 (8x8)": dict(
        feature_layers=("up_blocks.0.attentions.1.transformer_blocks.0.attn1",)
    ),
    "frame 0 optimised too (the paper)": dict(optimise_first_frame=True),
    "constant lr 0.21 (the paper's)": dict(learning_rate=0.21, learning_rate_scaling="constant"),
    "lr 0.12 x sigma": dict(learning_rate=0.12),
    "2 iterations at lr 0.18 x sigma": dict(iterations=2, learning_rate=0.18),
    "5 iterations at lr 0.08 x sigma (the preset before)": dict(iterations=5, learning_rate=0.08),
    "constant lr 10 + frame 0 optimised + 5 iterations (the first preset)": dict(
        iterations=5, learning_rate=10.0, learning_rate_scaling="constant", optimise_first_frame=True
    ),
    "weight decay 0": dict(weight_decay=0.0),
    "steps 0..4 (early)": dict(optimised_steps=tuple(range(0, 5))),
    "steps 10..16 (late)": dict(optimised_steps=tuple(range(10, 17))),
    "steps 2..14": dict(optimised_steps=tuple(range(2, 15))),
}
DEFAULT_ROWS = tuple(ROWS)


def evaluate(
    pipe, num_scenes: int = 8, seed: int = 0, rows=DEFAULT_ROWS, base_config=None, progress=True
) -> list[dict]:
    """Rows of the table: {"row", "objmc", "correlation", "shape_iou", "area_ratio", "new_content", "sharpness",
    "histogram", "seconds"}."""
    import time

    from PIL import Image

    from ..config import get_preset
    from ..sampler import generate, resolve_config

    base = resolve_config(pipe, base_config or get_preset("toy"))
    size, frames = base.height, base.num_frames
    cases = [make_case(i, seed, size, frames) for i in range(num_scenes)]
    results = []
    real = [score_video(case.scene.frames, case) for case in cases]
    results.append(dict(row="real videos (their own motion)", **_mean(real), seconds=0.0))
    round_trips = [score_video(through_vae(pipe, case.scene.frames, base.decode_chunk_size), case) for case in cases]
    results.append(dict(row="real videos through the VAE", **_mean(round_trips), seconds=0.0))
    if progress:
        print("\n".join(format_row(r) for r in results), flush=True)
    for name in rows:
        config = base.replace(**ROWS[name])
        scores, started = [], time.perf_counter()
        for case in cases:
            video = generate(pipe, Image.fromarray(case.scene.frames[0]), case.tracks(), config, progress=False)
            scores.append(score_video(video.frames, case))
        results.append(dict(row=name, **_mean(scores), seconds=(time.perf_counter() - started) / len(cases)))
        if progress:
            print(format_row(results[-1]), flush=True)
    return results


def _mean(scores: list[dict]) -> dict:
    real_sharpness = np.mean([s["real_sharpness"] for s in scores])
    return dict(
        objmc=float(np.mean([s["objmc"] for s in scores])),
        correlation=float(np.mean([s["correlation"] for s in scores])),
        shape_iou=float(np.mean([s["shape_iou"] for s in scores])),
        area_ratio=float(np.mean([s["area_ratio"] for s in scores])),
        new_content=float(np.mean([s["new_content"] for s in scores])),
        sharpness=float(np.mean([s["sharpness"] for s in scores]) / real_sharpness),
        histogram=float(np.mean([s["histogram"] for s in scores])),
    )


HEADER = (
    "| setting | ObjMC (px) | integrity: shape IoU | integrity: template corr. | integrity: area ratio | "
    "new content (px / frame) | quality: high-freq. energy (1 = real) | quality: histogram dist. | s / video |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def format_row(r: dict) -> str:
    return (
        f"| {r['row']} | {r['objmc']:.2f} | {r['shape_iou']:.3f} | {r['correlation']:.3f} | {r['area_ratio']:.2f} | "
        f"{r['new_content']:.0f} | {r['sharpness']:.2f} | {r['histogram']:.3f} | {r['seconds']:.1f} |"
    )


def format_table(results: list[dict]) -> str:
    return "\n".join([HEADER] + [format_row(r) for r in results])
