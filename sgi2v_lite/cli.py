"""Command line: `python -m sgi2v_lite generate ...` and `python -m sgi2v_lite tracks convert IN OUT`.

Every bad input ends in one line on stderr (``error: ...``) and exit code 2, never a traceback; Ctrl-C
in one line and exit code 130. Every number has a range (`config.LIMITS`, `tracks.MAX_PIXELS`), and
every output file is written beside its path and renamed into place only when the whole run succeeded
(`video.replaced_on_success`), so a failed or interrupted run leaves no half-written file behind.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

from .config import LIMITS
from .errors import InputError, shorten
from .toy.world import TOY_SIZE

DTYPES = ("float32", "float16", "bfloat16")
STRIP_MIN_HEIGHT = 192  # --strip enlarges smaller frames (the toy's 64 px) by a whole factor
MAX_SCENES = 1000  # evaluate --scenes: each scene is one generation per row


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _int_in(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`; anything else is an error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a number, or more than 4300 digits
            value = None
        if value is None or not low <= value <= high:
            shown = shorten(text) if value is not None else shorten(repr(text))
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {shown}")
        return value

    return parse


def _limited(setting: str):
    """The argparse type of a flag that sets the integer `setting` of `SGI2VConfig`: its `LIMITS`."""
    return _int_in(*LIMITS[setting])


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS
    from .models import MODEL_NAMES
    from .tracks import MAX_PIXELS
    from .video import MIN_IMAGE_SIDE

    parser = _Parser(prog="python -m sgi2v_lite", description="SG-I2V: trajectory-controlled image-to-video on SVD.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="image + tracks -> video")
    gen.add_argument("--model", default="toy", help=f"{', '.join(MODEL_NAMES)}, or a folder saved with save_pretrained")
    gen.add_argument("--image", required=True, help="first frame (PNG, JPEG, ...; RGBA and greyscale work)")
    gen.add_argument("--tracks", help="tracks JSON (or a reference traj.npy); omit for plain SVD")
    gen.add_argument("--out", required=True, help="output video: .mp4, .gif or .npz (raw frames under 'frames')")
    gen.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="settings preset (default: toy for toy models; for SVD the largest that the GPU memory model fits on "
        "this GPU)",
    )
    gen.add_argument("--seed", type=_limited("seed"), help="random seed (default: the preset's, 817)")
    gen.add_argument(
        "--steps", type=_limited("num_inference_steps"), help="denoising steps (optimised steps are rescaled to match)"
    )
    gen.add_argument("--frames", type=_limited("num_frames"), help="number of frames (default: the model's)")
    gen.add_argument("--height", type=_limited("height"), help="frame height in pixels (default: the preset's)")
    gen.add_argument("--width", type=_limited("width"), help="frame width in pixels (default: the preset's)")
    gen.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting of SGI2VConfig, e.g. --set learning_rate=0.05 --set frequency_mix=false",
    )
    gen.add_argument("--no-guidance", action="store_true", help="plain SVD: no latent optimisation")
    gen.add_argument("--overlay", action="store_true", help="draw the boxes and trajectories over the video")
    gen.add_argument(
        "--strip",
        help=f"also save the frames side by side as this PNG (frames under "
        f"{STRIP_MIN_HEIGHT} px enlarged, pixels as blocks)",
    )
    gen.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    gen.add_argument("--dtype", choices=list(DTYPES), help="the models' dtype (default: float16 on CUDA, else float32)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    tracks = commands.add_parser("tracks", help="tracks file tools")
    tracks_commands = tracks.add_subparsers(dest="tracks_command", required=True, parser_class=_Parser)
    convert = tracks_commands.add_parser("convert", help="convert between tracks JSON and the reference traj.npy")
    convert.add_argument("input", help="a .json tracks file or a reference .npy")
    convert.add_argument("output", help="a .json or .npy path")
    convert.add_argument("--image", help="the image the trajectory was drawn on (its size goes into the JSON)")
    convert.add_argument(
        "--image-size",
        type=_int_in(1, MAX_PIXELS),
        nargs=2,
        metavar=("W", "H"),
        help="image size for .npy -> .json without --image (default 1024 576)",
    )
    convert.add_argument("--frames", type=_limited("num_frames"), default=14, help="frames in the .npy (default 14)")
    toy = commands.add_parser("toy", help="the toy world")
    toy_commands = toy.add_subparsers(dest="toy_command", required=True, parser_class=_Parser)
    scene = toy_commands.add_parser("scene", help="write a toy scene's first frame and ground-truth tracks")
    scene.add_argument("--seed", type=_limited("seed"), default=0)
    scene.add_argument("--out", required=True, help="folder for image.png, tracks.json (and video.gif with --video)")
    scene.add_argument("--frames", type=_int_in(1, LIMITS["num_frames"][1]), default=8)
    scene.add_argument(
        "--size",
        type=_int_in(MIN_IMAGE_SIDE, LIMITS["height"][1]),
        default=TOY_SIZE,
        help=f"frame side in pixels (default {TOY_SIZE}, the toy model's)",
    )
    scene.add_argument("--camera", choices=["none", "pan", "zoom_in", "zoom_out"], help="default: drawn at random")
    scene.add_argument("--video", action="store_true", help="also write the ground-truth video")

    evaluate = commands.add_parser("evaluate", help="ObjMC, object integrity and quality on held-out toy scenes")
    evaluate.add_argument("--model", default="toy")
    evaluate.add_argument("--scenes", type=_int_in(1, MAX_SCENES), default=8)
    evaluate.add_argument("--seed", type=_limited("seed"), default=0)
    evaluate.add_argument("--rows", help="comma-separated subset of the rows (default: all)")
    evaluate.add_argument("--out", help="also write the markdown table to this file")
    evaluate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a setting of the toy preset for every row, e.g. --set motion_bucket_id=60",
    )
    return parser


def _read_tracks(path: str, image_size=None):
    from .tracks import REFERENCE_IMAGE_SIZE, load_reference_traj, load_tracks

    if Path(path).suffix.lower() == ".npy":
        return load_reference_traj(path, image_size or REFERENCE_IMAGE_SIZE)
    return load_tracks(path)


def cmd_generate(args) -> int:
    from .config import scaled_steps
    from .models import default_config, load_pipeline
    from .sampler import generate
    from .video import check_output_path, check_video_path, load_image, replaced_on_success, write_video
    from .viz import draw_tracks, frame_strip, save_png

    out = check_video_path(args.out)
    if args.strip and Path(args.strip).suffix.lower() != ".png":
        raise InputError(f"--strip {args.strip}: expected a .png path")
    strip = check_output_path(args.strip) if args.strip else None
    image = load_image(args.image)
    tracks = _read_tracks(args.tracks, image.size) if args.tracks else None
    _check_device(args.device)
    model = args.model  # "auto" is resolved by default_config and load_pipeline
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
    _check_feature_layers(pipe, config)
    started = time.perf_counter()
    result = generate(pipe, image, tracks, config, progress=not args.quiet)
    frames = draw_tracks(result.frames, result.boxes_px, min_size=0) if args.overlay and tracks else result.frames
    with ExitStack() as outputs:  # both files appear only once both are written
        write_video(outputs.enter_context(replaced_on_success(out)), frames, fps=result.config.fps)
        if strip:
            save_png(
                outputs.enter_context(replaced_on_success(strip)), frame_strip(frames, min_height=STRIP_MIN_HEIGHT)
            )
    mode = "guided" if (tracks and result.config.guidance) else "unguided"
    print(
        f"wrote {out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}, {mode}, "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


def _check_device(name: str | None) -> None:
    """Raise `InputError` unless `--device` names a CPU, or a CUDA or Apple (mps) GPU that torch sees here."""
    import torch

    if name is None:
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {shorten(name)!r}: expected cpu, cuda, cuda:N or mps") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"--device {name!r}: expected cpu, cuda, cuda:N or mps")
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and (count == 0 or (device.index or 0) >= count):
        raise InputError(f"--device {name!r}: torch sees {count} CUDA GPU(s) here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {name!r}: torch sees no Apple GPU (mps) here")


def _check_feature_layers(pipe, config) -> None:
    """Raise `InputError` if `--set feature_layers=[...]` names a layer the loaded UNet does not have."""
    from .attention import check_layers

    if config.feature_layers:
        try:
            check_layers(pipe.unet, config.feature_layers)
        except ValueError as err:
            raise InputError(f"setting 'feature_layers': {err}") from err


def cmd_tracks_convert(args) -> int:
    import numpy as np

    from .tracks import to_reference_traj
    from .video import check_output_path, load_image, replaced_on_success

    output = Path(args.output)
    if output.suffix.lower() not in (".json", ".npy"):
        raise InputError(f"output {output}: expected a .json or .npy path")
    check_output_path(output)
    image_size = tuple(args.image_size) if args.image_size else None
    if args.image:
        image_size = load_image(args.image).size
    tracks = _read_tracks(args.input, image_size)
    with replaced_on_success(output) as temporary:
        if output.suffix.lower() == ".npy":
            np.save(temporary, to_reference_traj(tracks, args.frames))
        else:
            tracks.save(temporary)
    print(f"wrote {output}: {len(tracks)} track(s)")
    return 0


def cmd_toy_scene(args) -> int:
    from .toy.world import make_scene
    from .video import check_output_path, replaced_on_success, write_video
    from .viz import save_png

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; toy scene writes a folder")
    check_output_path(out / "image.png")
    scene = make_scene(args.seed, args.size, args.frames, camera=args.camera)
    with ExitStack() as outputs:  # the files appear only once all are written
        save_png(outputs.enter_context(replaced_on_success(out / "image.png")), scene.frames[0])
        scene.tracks().save(outputs.enter_context(replaced_on_success(out / "tracks.json")))
        if args.video:
            write_video(outputs.enter_context(replaced_on_success(out / "video.gif")), scene.frames)
    shapes = ", ".join(o.shape for o in scene.objects)
    print(f"wrote {out}/image.png and tracks.json: {shapes}; camera {scene.camera}")
    return 0


def cmd_evaluate(args) -> int:
    from .config import get_preset
    from .models import load_pipeline
    from .toy.evaluate import DEFAULT_ROWS, HEADER, ROWS, evaluate, format_table
    from .video import check_output_path, replaced_on_success

    rows = tuple(r.strip() for r in args.rows.split(",")) if args.rows else DEFAULT_ROWS
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise InputError(f"unknown row(s) {unknown}; choose from: {', '.join(ROWS)}")
    base_config = get_preset("toy").with_settings(args.set)
    base_config.validate(size_multiple=1)  # before loading the model, as generate does
    if args.out:
        check_output_path(args.out)
    pipe = load_pipeline(args.model)
    print(HEADER, flush=True)
    table = format_table(evaluate(pipe, args.scenes, args.seed, rows, base_config=base_config))
    settings = f", toy preset with {', '.join(args.set)}" if args.set else ""
    if args.out:
        with replaced_on_success(args.out) as temporary:
            temporary.write_text(table + "\n")
    print(f"\n{args.scenes} held-out scenes (seed {args.seed}), model {args.model}{settings}")
    return 0


def main(argv=None) -> int:
    """Run one command and return its exit code: 0, 2 with one line ``error: ...`` on stderr for a bad
    input (`InputError`), 130 with one line for Ctrl-C (the outputs are left as they were)."""
    warnings.simplefilter("ignore", FutureWarning)
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    try:
        args = build_parser().parse_args(argv)  # inside: building it imports torch, which Ctrl-C may stop
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
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C): no output file was written or changed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
