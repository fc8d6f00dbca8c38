"""Tracks: the user's input (boxes and trajectories), validated, resampled and put on the latent grid.

The JSON format, in pixels of the image the tracks were drawn on::

    {"image_size": [W, H],
     "tracks": [{"box": [x0, y0, x1, y1], "path": [[x, y], ...]}, ...]}

`path` holds the box centre over time. With exactly F points it gives each frame's centre; any
other count >= 2 is resampled uniformly by arc length to F frames; one point is a static anchor.
As in the paper's reference implementation a box only translates: the box at frame f is the
first box shifted by ``path[f] - path[0]`` (SG-I2V, Sec. 4 "Trajectory input").

The reference implementation stores the same thing as ``traj.npy``, an array (N, 2 + F, 2) of (x, y):
rows 0 and 1 are the top-left and bottom-right corners of box n, rows 2.. the centre in each frame.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, shorten

# Limits on a tracks file, far beyond any drawn by hand; past them it is a mistake or an attack.
MAX_TRACKS = 100
MAX_POINTS = 10_000  # per path
MAX_PIXELS = 1_000_000  # largest image side and |coordinate|, in pixels
MAX_FILE_BYTES = 64_000_000

# (W, H) of the images the reference implementation's traj.npy files are drawn on
REFERENCE_IMAGE_SIZE = (1024, 576)


@dataclass
class Track:
    """One controlled region: its box on frame 0 and its centre path (image pixels)."""

    box: tuple[float, float, float, float]  # (x0, y0, x1, y1), x0 < x1, y0 < y1
    path: list[tuple[float, float]]  # box centre over time, >= 1 point

    @property
    def is_static(self) -> bool:
        """True for an anchor: the path never leaves its first point."""
        return all(p == self.path[0] for p in self.path)


@dataclass
class Tracks:
    """All tracks of one request, in pixels of an image of `image_size` = (W, H)."""

    image_size: tuple[int, int]  # (W, H)
    tracks: list[Track]

    def __len__(self) -> int:
        return len(self.tracks)

    # ----------------------------------------------------------------- JSON in / out
    def to_dict(self) -> dict:
        return {
            "image_size": [int(self.image_size[0]), int(self.image_size[1])],
            "tracks": [
                {"box": [float(v) for v in t.box], "path": [[float(x), float(y)] for x, y in t.path]}
                for t in self.tracks
            ],
        }

    def to_json(self) -> str:
        """The JSON text, one track a line."""
        data = self.to_dict()
        lines = [json.dumps(track) for track in data["tracks"]]
        return f'{{"image_size": {json.dumps(data["image_size"])},\n "tracks": [\n  ' + ",\n  ".join(lines) + "\n ]}\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    # ------------------------------------------------------------ per-frame geometry
    def centres(self, num_frames: int) -> np.ndarray:
        """Each track's centre path resampled to `num_frames`: (N, F, 2) pixels (x, y)."""
        paths = [resample_path(t.path, num_frames) for t in self.tracks]
        return np.stack(paths) if paths else np.zeros((0, num_frames, 2))

    def boxes_per_frame(self, num_frames: int) -> np.ndarray:
        """Every box in every frame, (N, F, 4) pixels (x0, y0, x1, y1): the first box translated."""
        centres = self.centres(num_frames)  # (N, F, 2)
        offsets = centres - centres[:, :1]  # displacement from frame 0, (N, F, 2)
        first_boxes = np.array([t.box for t in self.tracks], dtype=np.float64).reshape(-1, 1, 4)
        return first_boxes + np.concatenate([offsets, offsets], axis=-1)

    def rescaled(self, new_size: tuple[int, int]) -> Tracks:
        """The same tracks in pixels of the image resized to `new_size` = (W, H)."""
        sx = new_size[0] / self.image_size[0]
        sy = new_size[1] / self.image_size[1]
        return Tracks(
            image_size=(int(new_size[0]), int(new_size[1])),
            tracks=[
                Track(
                    box=(t.box[0] * sx, t.box[1] * sy, t.box[2] * sx, t.box[3] * sy),
                    path=[(x * sx, y * sy) for x, y in t.path],
                )
                for t in self.tracks
            ],
        )


# --------------------------------------------------------------------------- parsing
def _number(value, where: str) -> float:
    """A coordinate or size in pixels: a finite number of at most `MAX_PIXELS` in magnitude."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: expected a number, got {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity, or 1e400 (read as inf)
        raise InputError(f"{where}: expected a finite number, got {value}")
    if abs(value) > MAX_PIXELS:
        raise InputError(f"{where}: expected at most {MAX_PIXELS} pixels in magnitude, got {shorten(str(value))}")
    return float(value)


def _shown(value) -> str:
    """A JSON value as it goes into an error message, shortened."""
    try:
        return shorten(json.dumps(value))
    except RecursionError:
        return "a deeply nested list"


def _numbers(value, count: int, where: str, what: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        got = f"{len(value)} values" if isinstance(value, (list, tuple)) else _shown(value)
        raise InputError(f"{where}: expected {count} numbers {what}, got {got}")
    return [_number(v, f"{where}[{i}]") for i, v in enumerate(value)]


def parse_tracks(data) -> Tracks:
    """Validate a decoded JSON object and return `Tracks`; any problem raises `InputError`
    naming the track and field (e.g. ``track 1: field 'box': x1 (10) must be greater than x0 (40)``)."""
    if not isinstance(data, dict):
        raise InputError("tracks: expected a JSON object with 'image_size' and 'tracks'")
    for field in ("image_size", "tracks"):
        if field not in data:
            raise InputError(f"tracks: missing field '{field}'")
    width, height = _numbers(data["image_size"], 2, "field 'image_size'", "[W, H]")
    if width <= 0 or height <= 0 or width != int(width) or height != int(height):
        raise InputError(f"field 'image_size': expected two positive integers [W, H], got {data['image_size']}")
    if not isinstance(data["tracks"], list):
        raise InputError('field \'tracks\': expected a list of {"box": ..., "path": ...} objects')
    if not data["tracks"]:
        raise InputError("field 'tracks': the list is empty, give at least one track")
    if len(data["tracks"]) > MAX_TRACKS:
        raise InputError(f"field 'tracks': {len(data['tracks'])} tracks, at most {MAX_TRACKS} are supported")

    tracks = []
    for n, item in enumerate(data["tracks"]):
        where = f"track {n}"
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected an object with 'box' and 'path'")
        for field in ("box", "path"):
            if field not in item:
                raise InputError(f"{where}: missing field '{field}'")
        x0, y0, x1, y1 = _numbers(item["box"], 4, f"{where}: field 'box'", "[x0, y0, x1, y1]")
        if x1 <= x0:
            raise InputError(f"{where}: field 'box': x1 ({x1:g}) must be greater than x0 ({x0:g})")
        if y1 <= y0:
            raise InputError(f"{where}: field 'box': y1 ({y1:g}) must be greater than y0 ({y0:g})")
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise InputError(
                f"{where}: field 'box': [{x0:g}, {y0:g}, {x1:g}, {y1:g}] lies outside the "
                f"{int(width)} x {int(height)} image"
            )
        path = item["path"]
        if not isinstance(path, list) or not path:
            raise InputError(f"{where}: field 'path': expected a non-empty list of [x, y] points")
        if len(path) > MAX_POINTS:
            raise InputError(f"{where}: field 'path': {len(path)} points, at most {MAX_POINTS} are supported")
        points = [tuple(_numbers(p, 2, f"{where}: field 'path' point {i}", "[x, y]")) for i, p in enumerate(path)]
        tracks.append(Track(box=(x0, y0, x1, y1), path=points))
    return Tracks(image_size=(int(width), int(height)), tracks=tracks)


def load_tracks(path: str | Path) -> Tracks:
    """Read and validate a tracks JSON file. Raises `InputError` for a missing, unreadable, huge or
    non-JSON file, for JSON nested too deeply for Python's parser, and for anything `parse_tracks` refuses."""
    path = Path(path)
    _check_file(path, "tracks file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InputError(f"tracks file {path} is not a text (JSON) file") from None
    except OSError as err:
        raise InputError(f"cannot read tracks file {path}: {err.strerror or err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise InputError(f"tracks file {path} is not valid JSON: {err.msg} at {where}") from None
    except RecursionError:
        raise InputError(f"tracks file {path} is nested too deeply to be tracks JSON") from None
    except ValueError:  # json's guard against integers of thousands of digits
        raise InputError(f"tracks file {path} holds an integer too long to read (over 4300 digits)") from None
    return parse_tracks(data)


def _check_file(path: Path, what: str) -> None:
    """Raise `InputError` unless `path` is an existing file of at most `MAX_FILE_BYTES`."""
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{what} {path} has {path.stat().st_size} bytes; at most {MAX_FILE_BYTES} are read")


# ----------------------------------------------------------------------- resampling
def resample_path(path, num_frames: int) -> np.ndarray:
    """Centre positions for `num_frames` frames, (F, 2).

    Exactly F points are kept as they are; one point (or a path that never moves) is static; any
    other count is resampled at F points equally spaced along the path's arc length, so the box
    moves at constant speed along the curve the user drew."""
    if num_frames < 1:
        raise InputError(f"number of frames must be positive, got {num_frames}")
    points = np.asarray(path, dtype=np.float64).reshape(-1, 2)  # (P, 2)
    if len(points) == num_frames:
        return points.copy()
    segment_lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)  # (P-1,)
    arc = np.concatenate([[0.0], np.cumsum(segment_lengths)])  # (P,)
    if len(points) == 1 or arc[-1] == 0:
        return np.repeat(points[:1], num_frames, axis=0)
    keep = np.concatenate([[True], segment_lengths > 0])  # drop repeated points: arc must increase
    arc, points = arc[keep], points[keep]
    targets = np.linspace(0.0, arc[-1], num_frames)
    return np.stack([np.interp(targets, arc, points[:, 0]), np.interp(targets, arc, points[:, 1])], axis=1)


# ------------------------------------------------------------------- latent grid
def boxes_to_grid(boxes_px: np.ndarray, cell_px: int, grid_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Map pixel boxes to integer cells of a feature grid (SG-I2V spec step 2).

    boxes_px: (N, F, 4) pixels (x0, y0, x1, y1) of the generation-size image; each track's box
              only translates from frame to frame.
    cell_px:  pixels per grid cell (8, the VAE factor, for the latent grid).
    Returns (box_cells (N, F, 4) int64 with exclusive ends, valid (N, F) bool).

    Only what is visible on frame 0 can be a target, so a frame-0 box that sticks out of the image
    is first clipped to it, and every later box is that clipped box translated. Corners are then
    floor-divided and a box is at least one cell wide and high. Later boxes are *not* clipped: the
    loss crops them to the grid itself (`loss.visible_part`), as the reference implementation does.
    A frame whose box lies wholly outside the grid is marked invalid (the loss skips it)."""
    grid_h, grid_w = grid_hw
    boxes = np.array(boxes_px, dtype=np.float64).reshape(-1, np.shape(boxes_px)[-2], 4)  # (N, F, 4)
    first = boxes[:, :1]  # (N, 1, 4)
    limits = np.array([0, 0, 0, 0]), np.array([grid_w, grid_h, grid_w, grid_h]) * cell_px
    shrink = np.clip(first, *limits) - first  # how far each edge of frame 0's box moves inward
    boxes = boxes + shrink
    cells = np.floor(boxes / cell_px).astype(np.int64)  # (N, F, 4)
    cells[..., 2] = np.maximum(cells[..., 2], cells[..., 0] + 1)
    cells[..., 3] = np.maximum(cells[..., 3], cells[..., 1] + 1)
    valid = (cells[..., 0] < grid_w) & (cells[..., 2] > 0) & (cells[..., 1] < grid_h) & (cells[..., 3] > 0)
    return cells, valid


def clip_cells(box_cells: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Boxes of cells (..., 4) clipped to a grid of (H, W) cells, e.g. to draw them on it."""
    grid_h, grid_w = grid_hw
    clipped = np.array(box_cells, copy=True)
    clipped[..., 0::2] = np.clip(clipped[..., 0::2], 0, grid_w)
    clipped[..., 1::2] = np.clip(clipped[..., 1::2], 0, grid_h)
    return clipped


# ------------------------------------------------------- reference traj.npy layout
def from_reference_traj(traj: np.ndarray, image_size: tuple[int, int] = REFERENCE_IMAGE_SIZE) -> Tracks:
    """Tracks from the reference implementation's array (N, 2 + F, 2); its examples are drawn on
    1024 x 576 images, the default `image_size` (W, H)."""
    traj = np.asarray(traj)
    if traj.ndim != 3 or traj.shape[1] < 3 or traj.shape[2] != 2:
        raise InputError(f"reference trajectory: expected an array of shape (N, 2 + F, 2), got {traj.shape}")
    if traj.dtype.kind not in "iuf":
        raise InputError(f"reference trajectory: expected real numbers, got an array of {traj.dtype}")
    if not 0 < traj.shape[0] <= MAX_TRACKS or traj.shape[1] > 2 + MAX_POINTS:
        raise InputError(
            f"reference trajectory: shape {traj.shape}, expected 1 to {MAX_TRACKS} tracks of up to {MAX_POINTS} points"
        )
    data = {
        "image_size": list(image_size),
        "tracks": [{"box": [*t[0].tolist(), *t[1].tolist()], "path": t[2:].tolist()} for t in traj],
    }
    return parse_tracks(data)


def to_reference_traj(tracks: Tracks, num_frames: int) -> np.ndarray:
    """The reference implementation's array (N, 2 + F, 2) for these tracks, paths resampled to F."""
    corners = np.array([t.box for t in tracks.tracks], dtype=np.float64).reshape(-1, 2, 2)  # (N, 2, 2)
    return np.concatenate([corners, tracks.centres(num_frames)], axis=1)


def load_reference_traj(path: str | Path, image_size: tuple[int, int] = REFERENCE_IMAGE_SIZE) -> Tracks:
    """Tracks from the reference implementation's traj.npy. The file is memory-mapped, so a header
    that claims a huge array is refused without reading it."""
    path = Path(path)
    _check_file(path, "trajectory file")
    try:
        traj = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{path} is not a NumPy .npy array: {err}") from err
    return from_reference_traj(traj, image_size)
