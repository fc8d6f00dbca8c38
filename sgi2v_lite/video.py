"""Images in, videos out.

`load_image` accepts any image PIL reads (RGBA and greyscale included) and returns RGB;
`write_video` writes .mp4 / .gif through mediapy with imageio-ffmpeg's own ffmpeg binary (no
system ffmpeg needed), or .npz with the raw frames under the key ``frames`` (uint8, F x H x W x 3).
`replaced_on_success` lets the CLI write every output so that a failed or interrupted run leaves
no half-written file and never destroys the file that was there before.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import InputError, shorten

VIDEO_SUFFIXES = (".mp4", ".gif", ".npz")
MIN_IMAGE_SIDE = 8  # pixels; SVD's CLIP preprocessing fails on a 1-pixel side


def load_image(path: str | Path):
    """An RGB PIL image; transparent pixels are put on white. Raises `InputError` if the file is
    missing, a folder, not an image, truncated or corrupt, smaller than `MIN_IMAGE_SIDE` or has more
    pixels than PIL decodes safely (its decompression-bomb limit, `PIL.Image.MAX_IMAGE_PIXELS`: a
    small file can claim a huge image)."""
    from PIL import Image

    path = Path(path)
    if path.is_dir():
        raise InputError(f"image {path} is a folder, not a file")
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    bomb = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, rather than warn and decode
            with Image.open(path) as opened:
                image = opened.convert("RGBA") if opened.mode in ("RGBA", "LA", "P") else opened.convert("RGB")
                image.load()
    except bomb:
        limit = Image.MAX_IMAGE_PIXELS
        raise InputError(f"image {path} has more than {limit} pixels: too large to decode safely") from None
    except Exception as err:  # PIL's plugins raise many kinds (OSError, SyntaxError, ValueError, ...) for a bad file
        raise InputError(f"cannot read image {path}: {shorten(str(err) or type(err).__name__, 120)}") from err
    if min(image.size) < MIN_IMAGE_SIDE:
        raise InputError(
            f"image {path} is {image.width} x {image.height} pixels; each side must be at least {MIN_IMAGE_SIDE}"
        )
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def check_video_path(path: str | Path) -> Path:
    """`path` if a video can be written there (a known suffix, `check_output_path`), else `InputError`."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"output {path}: unknown video type {path.suffix!r}, use one of {', '.join(VIDEO_SUFFIXES)}")
    return check_output_path(path)


def check_output_path(path: str | Path) -> Path:
    """`path` if a file can be created there, checked before a long run: not a folder, and no file
    where a folder above it should be. Raises `InputError` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a folder; give a file name")
    above = next(folder for folder in path.absolute().parents if folder.exists())
    if not above.is_dir():
        raise InputError(f"output {path}: {above} is a file, not a folder")
    return path


@contextmanager
def replaced_on_success(path: str | Path):
    """Yield a temporary path beside `path` (same folder and suffix, a hidden name) to write to; when
    the block ends without an exception it is renamed onto `path` (atomic on one file system). On an
    error or Ctrl-C it is removed, and a file already at `path` is left as it was. An `OSError` (a
    full disk, no write permission) becomes an `InputError` naming `path`."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        temporary.unlink(missing_ok=True)


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
