"""Command line: `python -m sgi2v_lite generate ...` and `python -m sgi2v_lite tracks convert IN OUT`.

Every bad input ends in one line on stderr (``error: ...``) and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from .errors import InputError
from .toy.world import TOY_SIZE

DTYPES = ("float32", "float16", "bfloat16")
STRIP_MIN_HEIGHT = 192  # --strip enlarges smaller frames (the toy's 64 px) by a whole factor


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS
    from .models import MODEL_NAMES

    parser = _Parser(prog="python -m sgi2v_lite", description="SG-I2V: trajectory-controlled image-to-video on SVD.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="image + tracks -> video")
    gen.add_argument("--model", default="toy", help=f"{', '.join(MODEL_NAMES)}, or a folder saved with save_pretrained")
    gen.add_argument("--image", required=True, help="first frame (PNG, JPEG, ...; RGBA and greyscale work)")
    gen.add_argument("--tracks", help="tracks JSON (or a reference traj.npy); omit for plain SVD")
    gen.add_argument("--out", required=True, help="output video: .mp4, .gif or .npz (raw frames under 'frames')")
    gen.add_argument("--preset", choices=list(PRESETS), help="settings preset (default: toy for toy models; for SVD the largest that the GPU memory model fits on this GPU)")
    gen.add_argument("--seed", type=int, help="random seed (default: the preset's, 817)")
    gen.add_argument("--steps", type=_positive_int, help="denoising steps (optimised steps are rescaled to match)")
    gen.add_argument("--frames", type=_positive_int, help="number of frames (default: the model's)")
    gen.add_argument("--height", type=_positive_int, help="frame height in pixels (default: the preset's)")
    gen.add_argument("--width", type=_positive_int, help="frame width in pixels (default: the preset's)")
    gen.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="any other setting of SGI2VConfig, e.g. --set learning_rate=0.05 --set frequency_mix=false")
    gen.add_argument("--no-guidance", action="store_true", help="plain SVD: no latent optimisation")
    gen.add_argument("--overlay", action="store_true", help="draw the boxes and trajectories over the video")
    gen.add_argument("--strip", help=f"also save the frames side by side as this PNG (frames under "
                     f"{STRIP_MIN_HEIGHT} px enlarged, pixels as blocks)")
    gen.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    gen.add_argument("--dtype", choices=list(DTYPES), help="the models' dtype (default: float16 on CUDA, else float32)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    tracks = commands.add_parser("tracks", help="tracks file tools")
    tracks_commands = tracks.add_subparsers(dest="tracks_command", required=True, parser_class=_Parser)
    convert = tracks_commands.add_parser("convert", help="convert between tracks JSON and the reference traj.npy")
    convert.add_argument("input", help="a .json tracks file or a reference .npy")
    convert.add_argument("output", help="a .json or .npy path")
    convert.add_argument("--image", help="the image the trajectory was drawn on (its size goes into the JSON)")
    convert.add_argument("--image-size", type=_positive_int, nargs=2, metavar=("W", "H"),
                         help="image size for .npy -> .json without --image (default 1024 576)")  # fmt: skip
    convert.add_argument("--frames", type=_positive_int, default=14, help="frames in the .npy (default 14)")
    toy = commands.add_parser("toy", help="the toy world")
    toy_commands = toy.add_subparsers(dest="toy_command", required=True, parser_class=_Parser)
    scene = toy_commands.add_parser("scene", help="write a toy scene's first frame and ground-truth tracks")
    scene.add_argument("--seed", type=int, default=0)
    scene.add_argument("--out", required=True, help="folder for image.png, tracks.json (and video.gif with --video)")
    scene.add_argument("--frames", type=_positive_int, default=8)
    scene.add_argument("--size", type=_positive_int, default=TOY_SIZE, help=f"frame side in pixels (default {TOY_SIZE}, the toy model's)")
    scene.add_argument("--camera", choices=["none", "pan", "zoom_in", "zoom_out"], help="default: drawn at random")
    scene.add_argument("--video", action="store_true", help="also write the ground-truth video")

    evaluate = commands.add_parser("evaluate", help="ObjMC, object integrity and quality on held-out toy scenes")
    evaluate.add_argument("--model", default="toy")
    evaluate.add_argument("--scenes", type=_positive_int, default=8)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--rows", help="comma-separated subset of the rows (default: all)")
    evaluate.add_argument("--out", help="also write the markdown table to this file")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="change a setting of the toy preset for every row, e.g. --set motion_bucket_id=60")
    return parser


def _read_tracks(path: str, image_size=None):
    from .tracks import load_reference_traj, load_tracks

    if Path(path).suffix.lower() == ".npy":
        return load_reference_traj(path, image_size or (1024, 576))
    return load_tracks(path)


def cmd_generate(args) -> int:
    from .config import scaled_steps
    from .models import auto_model_name, default_config, load_pipeline
    from .sampler import generate
    from .video import check_video_path, load_image, write_video
    from .viz import draw_tracks, frame_strip, save_png

    out = check_video_path(args.out)
    image = load_image(args.image)
    tracks = _read_tracks(args.tracks, image.size) if args.tracks else None
    model = auto_model_name() if args.model == "auto" else args.model
    config = default_config(model, args.device, args.preset)  # with the memory levers this GPU needs
    if args.seed is not None:
        config = config.replace(seed=args.seed)
    if args.steps is not None:
        window = config.optimised_steps
        steps = scaled_steps(window[0], window[-1], config.num_inference_steps, args.steps) if window else ()
        config = config.replace(num_inference_steps=args.steps, optimised_steps=steps)
    for name in ("frames", "height", "width"):
        if getattr(args, name) is not None:
            config = config.replace(**{"num_frames" if name == "frames" else name: getattr(args, name)})
    config = config.with_settings(args.set)
    if args.no_guidance:
        config = config.replace(guidance=False)
    config.validate(size_multiple=1)  # before loading the model; the model's own size rule is checked later

    import torch

    pipe = load_pipeline(model, device=args.device, dtype=getattr(torch, args.dtype) if args.dtype else None)
    started = time.perf_counter()
    result = generate(pipe, image, tracks, config, progress=not args.quiet)
    frames = draw_tracks(result.frames, result.boxes_px) if args.overlay and tracks else result.frames
    write_video(out, frames, fps=result.config.fps)
    if args.strip:
        save_png(args.strip, frame_strip(frames, min_height=STRIP_MIN_HEIGHT))
    mode = "guided" if (tracks and result.config.guidance) else "unguided"
    print(f"wrote {out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}, {mode}, "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    return 0


def cmd_tracks_convert(args) -> int:
    import numpy as np

    from .tracks import to_reference_traj
    from .video import load_image

    image_size = tuple(args.image_size) if args.image_size else None
    if args.image:
        image_size = load_image(args.image).size
    tracks = _read_tracks(args.input, image_size)
    output = Path(args.output)
    if output.suffix.lower() == ".npy":
        np.save(output, to_reference_traj(tracks, args.frames))
    elif output.suffix.lower() == ".json":
        tracks.save(output)
    else:
        raise InputError(f"output {output}: expected a .json or .npy path")
    print(f"wrote {output}: {len(tracks)} track(s)")
    return 0


def cmd_toy_scene(args) -> int:
    from .toy.world import make_scene
    from .video import write_video
    from .viz import save_png

    scene = make_scene(args.seed, args.size, args.frames, camera=args.camera)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_png(out / "image.png", scene.frames[0])
    scene.tracks().save(out / "tracks.json")
    if args.video:
        write_video(out / "video.gif", scene.frames)
    shapes = ", ".join(o.shape for o in scene.objects)
    print(f"wrote {out}/image.png and tracks.json: {shapes}; camera {scene.camera}")
    return 0


def cmd_evaluate(args) -> int:
    from .config import get_preset
    from .models import load_pipeline
    from .toy.evaluate import DEFAULT_ROWS, HEADER, ROWS, evaluate, format_table

    rows = tuple(r.strip() for r in args.rows.split(",")) if args.rows else DEFAULT_ROWS
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise InputError(f"unknown row(s) {unknown}; choose from: {', '.join(ROWS)}")
    base_config = get_preset("toy").with_settings(args.set)
    pipe = load_pipeline(args.model)
    print(HEADER, flush=True)
    table = format_table(evaluate(pipe, args.scenes, args.seed, rows, base_config=base_config))
    settings = f", toy preset with {', '.join(args.set)}" if args.set else ""
    if args.out:
        Path(args.out).write_text(table + "\n")
    print(f"\n{args.scenes} held-out scenes (seed {args.seed}), model {args.model}{settings}")
    return 0


def main(argv=None) -> int:
    warnings.simplefilter("ignore", FutureWarning)
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return cmd_generate(args)
        if args.command == "toy":
            return cmd_toy_scene(args)
        if args.command == "evaluate":
            return cmd_evaluate(args)
        return cmd_tracks_convert(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
