"""The toy world: procedurally generated videos of moving shapes, with ground truth.

A scene is a smooth, mildly textured background and 1 to 3 saturated shapes (circle, square,
triangle), each moving at a constant velocity in world coordinates and bouncing off the world's
borders; 3 in 10 of the clips add camera motion (pan, zoom in, zoom out). Everything is seeded
and rendered with numpy, about a millisecond a frame. Ground truth: every object's box and
centre in every frame, in image pixels. Two training-data experiments (`train.py --motion`; the
card says what each gave): `motion="varied"` makes some objects turn along arcs or change speed,
`motion="fast"` makes some move as fast as the evaluation's targets ask.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from ..tracks import Track, Tracks

SHAPES = ("circle", "square", "triangle")
CAMERA_MOTIONS = ("none", "pan", "zoom_in", "zoom_out")
CAMERA_SHARES = (0.7, 0.1, 0.1, 0.1)  # of the clips, for each camera motion
MOTIONS = ("linear", "varied", "fast")  # object motion: constant velocity; also arcs and speed changes; also faster
# "fast": 3 in 10 of the moving objects at 2.25 to 4.5 px a frame (at 64 px): the speeds the evaluation's
# targets ask for (2.2 to 4.3 px a frame, median 2.8), above the linear clips' top speed relative to the
# background, 2.25 px a frame (only camera pans and zooms carry objects faster across the frame)
FAST_SHARE, FAST_SPEED = 0.3, (4.5, 9.0)  # share of the moving objects; speed range in px a frame at 128 px
TOY_SIZE = 64  # frame side in pixels of the toy model (data/toy-svd); any size renders the same scene


@dataclass
class ToyObject:
    shape: str
    colour: tuple[float, float, float]  # RGB in [0, 1]
    size_px: float  # diameter / side at zoom 1
    start_px: tuple[float, float]  # world position of the centre at frame 0
    velocity_px: tuple[float, float]  # world pixels per frame (the step from frame 0 to 1, if it varies)
    turn_rad: float = 0.0  # the velocity turns by this angle every frame: an arc (a bounce mirrors it)
    speed_factor: float = 1.0  # the speed is multiplied by this every frame (speeding up or slowing down)

    def displacements_px(self, num_frames: int) -> np.ndarray:  # (F, 2) from the start, before bouncing
        frame = np.arange(num_frames - 1, dtype=np.float64)
        angle = np.arctan2(self.velocity_px[1], self.velocity_px[0]) + self.turn_rad * frame
        speed = np.hypot(*self.velocity_px) * self.speed_factor**frame
        steps = np.stack([speed * np.cos(angle), speed * np.sin(angle)], axis=-1)  # step f -> f+1
        return np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


@dataclass
class Scene:
    frames: np.ndarray  # (F, H, W, 3) uint8
    boxes_px: np.ndarray  # (N, F, 4) image pixels (x0, y0, x1, y1) of each object
    objects: list[ToyObject]
    camera: str
    motion_bucket_id: int  # SVD's motion condition: mean displacement, 0 (still) .. 255 (fast)
    backgrounds: np.ndarray  # (F, H, W, 3) uint8: the frames without their objects (what any pixel may show)

    @property
    def centres_px(self) -> np.ndarray:  # (N, F, 2)
        return np.stack(
            [(self.boxes_px[..., 0] + self.boxes_px[..., 2]) / 2, (self.boxes_px[..., 1] + self.boxes_px[..., 3]) / 2],
            axis=-1,
        )

    def tracks(self) -> Tracks:
        """The ground truth in the tracks JSON format: first box, centre path over all frames."""
        size = (self.frames.shape[2], self.frames.shape[1])
        return Tracks(
            image_size=size,
            tracks=[
                Track(box=tuple(float(v) for v in b[0]), path=[tuple(map(float, c)) for c in path])
                for b, path in zip(self.boxes_px, self.centres_px)
            ],
        )


def _background(rng: np.random.Generator):
    """A function (x, y) world pixels -> (..., 3) colour: a smooth two-colour gradient plus a few
    low-amplitude sinusoids (mild texture), so that motion of the camera is visible."""
    corner_a, corner_b = rng.uniform(0.15, 0.85, 3), rng.uniform(0.15, 0.85, 3)
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    waves = [
        (rng.uniform(0.05, 0.25, 2) * rng.choice([-1, 1], 2), rng.uniform(0, 2 * np.pi), rng.uniform(0.02, 0.05, 3))
        for _ in range(3)
    ]

    def colour(x, y):
        t = np.clip(0.5 + (direction[0] * (x - 64) + direction[1] * (y - 64)) / 180, 0, 1)[..., None]
        rgb = corner_a * (1 - t) + corner_b * t
        for (fx, fy), phase, amplitude in waves:
            rgb = rgb + amplitude * np.sin(fx * x + fy * y + phase)[..., None]
        return np.clip(rgb, 0, 1)

    return colour


def _shape_coverage(shape: str, dx: np.ndarray, dy: np.ndarray, half: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape of half-size `half` at offsets (dx, dy)."""
    if shape == "circle":
        distance = np.hypot(dx, dy) - half
    elif shape == "square":
        distance = np.maximum(np.abs(dx), np.abs(dy)) - half
    else:  # an upward triangle inscribed in the box: apex (0, -half), base corners (+-half, half)
        slanted_edge = (2 * np.abs(dx) - (dy + half)) / np.sqrt(5)  # signed distance, outward normal (2, -1)
        distance = np.maximum(dy - half, slanted_edge)
    return np.clip(0.5 - distance, 0, 1)


def _bounce(position: np.ndarray, low: float, high: float) -> np.ndarray:
    """Unbounded positions folded back into [low, high]: a point reflected at both walls."""
    span = high - low
    raw = (position - low) % (2 * span)
    return low + np.where(raw > span, 2 * span - raw, raw)


def make_scene(
    seed: int, size: int = TOY_SIZE, num_frames: int = 8, camera: str | None = None, motion: str = "linear"
) -> Scene:
    """One seeded toy video of `num_frames` frames of `size` x `size` pixels, with ground truth.

    `motion="linear"`: every object at a constant velocity (the evaluation scenes). Two
    training-data variants: `"varied"`, 3 in 10 of the moving objects turn along an arc and 3 in 10
    speed up or slow down; `"fast"`, 3 in 10 of the moving objects keep their direction at a speed
    of 2.25 to 4.5 px a frame (at 64 px; `FAST_SPEED`). A variant's extra draws come after each
    object's own, so its scene shares the linear one's background, camera motion, object count and
    the first object's shape, colour, size and start; the first object's motion, the later objects
    and the pan's speed or the zoom's rate may differ."""
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    rng = np.random.default_rng(seed)
    background = _background(rng)
    camera = camera or str(rng.choice(CAMERA_MOTIONS, p=CAMERA_SHARES))
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        hue = rng.uniform(0, 1)
        size_px = float(rng.uniform(0.22, 0.34) * size)
        speed = float(rng.choice([0.0, rng.uniform(0.5, 4.5)], p=[0.15, 0.85]) * size / 128)
        angle = rng.uniform(0, 2 * np.pi)
        obj = ToyObject(
            shape=str(rng.choice(SHAPES)),
            colour=colorsys.hsv_to_rgb(hue, rng.uniform(0.75, 1), rng.uniform(0.75, 1)),
            size_px=size_px,
            start_px=tuple(rng.uniform(size_px / 2, size - size_px / 2, 2)),
            velocity_px=(speed * np.cos(angle), speed * np.sin(angle)),
        )
        if motion == "varied":
            kind = rng.choice(["linear", "arc", "speed"], p=[0.4, 0.3, 0.3])
            if kind == "arc":  # a quarter to a half turn over the clip's F-1 steps, either way
                turn = rng.uniform(np.pi / 2, np.pi) / max(num_frames - 2, 1)
                obj.turn_rad = float(turn * rng.choice([-1, 1]))
            elif kind == "speed":  # speeding up to the drawn speed, or braking from it, 3 to 6 times over
                factor = float(rng.uniform(1.2, 1.35) ** rng.choice([-1, 1]))
                first_share = min(1.0, factor ** -(num_frames - 2))  # of the drawn speed: the fastest step is it
                obj.velocity_px = tuple(first_share * v for v in obj.velocity_px)
                obj.speed_factor = factor
        elif motion == "fast" and speed > 0 and rng.uniform() < FAST_SHARE:
            fast = float(rng.uniform(*FAST_SPEED) * size / 128)
            obj.velocity_px = (fast * np.cos(angle), fast * np.sin(angle))
        objects.append(obj)

    frame_index = np.arange(num_frames, dtype=np.float64)
    pan = rng.uniform(1.0, 2.5, 2) * rng.choice([-1, 1], 2) if camera == "pan" else np.zeros(2)
    rate = rng.uniform(1.03, 1.06)
    zoom = {"zoom_in": rate**frame_index, "zoom_out": rate**-frame_index}.get(camera, np.ones(num_frames))
    centre = size / 2

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    frames = np.empty((num_frames, size, size, 3), np.float64)
    backgrounds = np.empty_like(frames)
    boxes = np.empty((len(objects), num_frames, 4))
    paths = [obj.displacements_px(num_frames) for obj in objects]  # (F, 2) each, world pixels
    for f in range(num_frames):
        # image pixel p <-> world w:  p = (w - camera_centre_f) * zoom_f + centre
        camera_x, camera_y = centre + pan[0] * f, centre + pan[1] * f
        world_x, world_y = (xs - centre) / zoom[f] + camera_x, (ys - centre) / zoom[f] + camera_y
        image = backgrounds[f] = background(world_x, world_y)
        for n, obj in enumerate(objects):
            half = obj.size_px / 2
            wx, wy = _bounce(np.asarray(obj.start_px) + paths[n][f], half, size - half)
            cx, cy = (wx - camera_x) * zoom[f] + centre, (wy - camera_y) * zoom[f] + centre
            scaled_half = half * zoom[f]
            coverage = _shape_coverage(obj.shape, xs - cx, ys - cy, scaled_half)[..., None]
            image = image * (1 - coverage) + np.asarray(obj.colour) * coverage
            boxes[n, f] = (cx - scaled_half, cy - scaled_half, cx + scaled_half, cy + scaled_half)
        frames[f] = image
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    mean_step = np.linalg.norm(np.diff(centres, axis=1), axis=-1).mean() if num_frames > 1 else 0.0
    motion_bucket_id = int(round(min(mean_step / (4.0 * size / 128), 1.0) * 255))
    return Scene(
        frames=(frames * 255).round().astype(np.uint8),
        boxes_px=boxes,
        objects=objects,
        camera=camera,
        motion_bucket_id=motion_bucket_id,
        backgrounds=(backgrounds * 255).round().astype(np.uint8),
    )


def moving_clips(count: int, min_motion_px: float, first_seed: int, num_frames: int = 8) -> list[tuple[Scene, int]]:
    """The first `count` scenes from seed `first_seed` on (no camera motion) in which an object
    moves at least `min_motion_px` pixels (at 64 px) between the first and the last frame, each with
    the index of its object that moves most: clips on which following an object means something."""
    clips, seed = [], first_seed
    while len(clips) < count:
        scene = make_scene(seed, num_frames=num_frames, camera="none")
        moved = np.linalg.norm(scene.centres_px[:, -1] - scene.centres_px[:, 0], axis=-1)  # (N,)
        if moved.max() >= min_motion_px:
            clips.append((scene, int(moved.argmax())))
        seed += 1
    return clips
