"""Images in, videos out.

`load_image` accepts any image PIL reads (RGBA and greyscale included) and returns RGB;
`write_video` writes .mp4 / .gif through mediapy with imageio-ffmpeg's own ffmpeg binary (no
system ffmpeg needed), or .npz with the raw frames under the key ``frames`` (uint8, F x H x W x 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError

VIDEO_SUFFIXES = (".mp4", ".gif", ".npz")


def load_image(path: str | Path):
    """An RGB PIL image; transparent pixels are put on white. Raises `InputError` if the file is
    missing or not an image."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGBA") if opened.mode in ("RGBA", "LA", "P") else opened.convert("RGB")
            image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"cannot read image {path}: {err}")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def check_video_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"output {path}: unknown video type {path.suffix!r}, use one of {', '.join(VIDEO_SUFFIXES)}")
    return path


def use_bundled_ffmpeg() -> None:
    """Point mediapy at imageio-ffmpeg's ffmpeg binary."""
    import imageio_ffmpeg
    import mediapy

    mediapy.set_ffmpeg(imageio_ffmpeg.get_ffmpeg_exe())


def write_video(path: str | Path, frames: np.ndarray, fps: float = 7) -> Path:
    """Write frames (F, H, W, 3) uint8 to .mp4, .gif or .npz (chosen by the suffix)."""
    path = check_video_path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npz":
        np.savez_compressed(path, frames=frames)
        return path
    import mediapy

    use_bundled_ffmpeg()
    if path.suffix.lower() == ".mp4" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # H.264 needs even sizes
    codec = "gif" if path.suffix.lower() == ".gif" else "h264"
    mediapy.write_video(path, frames, fps=fps, codec=codec)
    return path


def read_video(path: str | Path) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 from a file written by `write_video`."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        with np.load(path) as data:
            return data["frames"]
    import imageio_ffmpeg  # mediapy's reader passes -vsync, which recent ffmpeg builds no longer accept

    reader = imageio_ffmpeg.read_frames(str(path), output_params=["-fps_mode", "passthrough"])
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader])
