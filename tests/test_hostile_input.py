"""Hostile and absurd input to the CLI (issue 22): images too large to decode safely or broken,
pathological tracks files, numbers far outside what a setting can hold, and Ctrl-C. Each must end in
one line on stderr and exit code 2 (130 for Ctrl-C), never a traceback, and leave no output file
behind. Nearly all are refused before any model loads; the few that run one use the tiny random model."""

import errno
import json
import struct
import zlib

import numpy as np
import pytest

from sgi2v_lite.cli import main

FAST = ["--model", "tiny-random", "--steps", "3", "--height", "32", "--width", "32", "--set", "iterations=2", "--quiet"]
INTERRUPTED = "interrupted (Ctrl-C): no output file was written or changed"


def run(argv, capsys) -> tuple[int, str]:
    """`main(argv)` in-process: (exit code, stderr). A KeyboardInterrupt escaping main fails the test
    (rather than stopping pytest)."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own checks exit from inside
        code = stop.code
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main")
    return code, capsys.readouterr().err.strip()


def assert_one_line(err: str, start: str, message: str) -> None:
    assert err.startswith(start) and len(err.splitlines()) == 1, err
    assert message in err, err


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims `width` x `height` pixels (its data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


@pytest.fixture
def inputs(tmp_path, tiny_image, tiny_tracks):
    tiny_image.save(tmp_path / "image.png")
    tiny_tracks.save(tmp_path / "tracks.json")
    return tmp_path


# --------------------------------------------------------------------------------- images
def bad_images(folder):
    from PIL import Image

    (folder / "bomb.png").write_bytes(png_header(100_000, 100_000))  # PIL: DecompressionBombError
    (folder / "warning.png").write_bytes(png_header(10_000, 10_000))  # PIL: DecompressionBombWarning
    Image.new("RGB", (64, 64), (200, 10, 10)).save(folder / "whole.png")
    whole = (folder / "whole.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "folder.png").mkdir()
    Image.new("RGB", (1, 500)).save(folder / "thin.png")
    return {
        "bomb.png": "has more than 89478485 pixels: too large to decode safely",
        "warning.png": "has more than 89478485 pixels: too large to decode safely",
        "truncated.png": "cannot read image",
        "empty.png": "cannot read image",
        "folder.png": "is a folder, not a file",
        "thin.png": "is 1 x 500 pixels; each side must be at least 8",
    }


def test_images_too_large_broken_or_absurd_are_refused(inputs, capsys):
    for name, message in bad_images(inputs).items():
        out = inputs / "video.npz"
        code, err = run(["generate", "--image", str(inputs / name), "--out", str(out), *FAST], capsys)
        assert code == 2, name
        assert_one_line(err, "error: ", message)
        assert f"image {inputs / name}" in err
        assert not out.exists()


# --------------------------------------------------------------------------------- tracks
def bad_tracks(folder):
    def track(box="[8, 8, 24, 24]", path="[[16, 16], [40, 30]]", size="[64, 64]"):
        return f'{{"image_size": {size}, "tracks": [{{"box": {box}, "path": {path}}}]}}'

    files = {
        "nested.json": ("[" * 100_000 + "]" * 100_000, "is nested too deeply"),
        "nan.json": (track(box="[8, NaN, 24, 24]"), "track 0: field 'box'[1]: expected a finite number, got nan"),
        "infinity.json": (track(path="[[16, Infinity]]"), "field 'path' point 0[1]: expected a finite number, got inf"),
        "1e400.json": (track(box="[8, 8, 1e400, 24]"), "track 0: field 'box'[2]: expected a finite number, got inf"),
        "digits.json": (track(box="[8, 8, 1" + "0" * 5000 + ", 24]"), "an integer too long to read"),
        "far.json": (track(path="[[16, 16], [1e300, 5]]"), "point 1[0]: expected at most 1000000 pixels in magnitude"),
        "size.json": (track(size="[1e300, 64]"), "field 'image_size'[0]: expected at most 1000000 pixels"),
        "tracks.json": (
            json.dumps({"image_size": [64, 64], "tracks": [{"box": [8, 8, 24, 24], "path": [[16, 16]]}] * 101}),
            "field 'tracks': 101 tracks, at most 100 are supported",
        ),
        "points.json": (track(path=json.dumps([[16, 16]] * 10_001)), "10001 points, at most 10000 are supported"),
        "binary.json": (b"\xff\xfe\x00\x81", "is not a text (JSON) file"),
    }
    for name, (content, _) in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "folder.json").mkdir()
    np.save(folder / "complex.npy", np.ones((1, 4, 2), complex))
    with open(folder / "claims.npy", "wb") as file:  # a header claiming 10^9 tracks, and no data
        np.lib.format.write_array_header_1_0(file, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 16, 2)})
    return {name: message for name, (_, message) in files.items()} | {
        "folder.json": "is a folder, not a file",
        "complex.npy": "expected real numbers, got an array of complex128",
        "claims.npy": "is not a NumPy .npy array",
    }


def test_pathological_tracks_files_are_refused(inputs, capsys, monkeypatch):
    monkeypatch.setattr("sgi2v_lite.tracks.MAX_FILE_BYTES", 1_000_000)  # instead of writing 64 MB
    (inputs / "large.json").write_text(" " * 1_000_001)
    for name, message in bad_tracks(inputs).items() | {"large.json": "has 1000001 bytes; at most 1000000"}.items():
        out = inputs / "video.npz"
        argv = ["generate", "--image", str(inputs / "image.png"), "--tracks", str(inputs / name), "--out", str(out)]
        code, err = run([*argv, *FAST], capsys)
        assert code == 2, name
        assert_one_line(err, "error: ", message)
        assert not out.exists()


# --------------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", str(10**30)], "argument --steps: expected an integer from 1 to 1000, got 1" + "0" * 30),
        (["--steps", "9" * 5000], "argument --steps: expected an integer from 1 to 1000, got '999"),
        (["--seed", "99999999999999999999999"], "argument --seed: expected an integer from 0 to 18446744073709551615"),
        (["--seed", "-1"], "argument --seed: expected an integer from 0 to 18446744073709551615, got -1"),
        (["--height", str(10**9)], "argument --height: expected an integer from 1 to 2048, got 1000000000"),
        (["--width", "0"], "argument --width: expected an integer from 1 to 2048, got 0"),
        (["--frames", str(10**6)], "argument --frames: expected an integer from 2 to 128, got 1000000"),
        (["--set", "learning_rate=1e999"], "setting 'learning_rate' must be a number from 0.0 to 1000.0, got inf"),
        (["--set", "learning_rate=NaN"], "setting 'learning_rate' must be a number from 0.0 to 1000.0, got nan"),
        (["--set", f"learning_rate={10**400}"], "setting 'learning_rate' must be a number from 0.0 to 1000.0, got inf"),
        (["--set", f"num_inference_steps={10**23}"], "setting 'num_inference_steps' must be an integer from 1 to"),
        (["--set", "seed=" + str(10**23)], "setting 'seed' must be an integer from 0 to 18446744073709551615"),
        (["--set", "fps=0"], "setting 'fps' must be an integer from 1 to 240, got 0"),
        (["--set", "fps=1e30"], "--set 'fps=1e30': expected an integer like 7"),
        (["--set", "motion_bucket_id=-5"], "setting 'motion_bucket_id' must be an integer from 0 to 1023, got -5"),
        (["--set", "iterations=" + str(10**14)], "setting 'iterations' must be an integer from 0 to 1000"),
        (["--set", "min_guidance_scale=-Infinity"], "setting 'min_guidance_scale' must be a number from 0.0 to 100.0"),
        (["--set", "noise_aug_strength=-1"], "setting 'noise_aug_strength' must be a number from 0.0 to 10.0"),
        (["--set", "lowpass_order=" + str(10**12)], "setting 'lowpass_order' must be an integer from 1 to 64"),
        (["--set", "decode_chunk_size=0"], "setting 'decode_chunk_size' must be a positive integer, got 0"),
        (["--set", "num_inference_steps=null"], "--set 'num_inference_steps=null': expected an integer like 25"),
        (["--set", "optimised_steps=[1.5]"], "setting 'optimised_steps' must hold step indices (integers), got (1.5,)"),
        (["--set", "optimised_steps=" + "[" * 100_000], "--set 'optimised_steps=[[[[[[["),
        (["--set", "feature_layers=[1, 2]"], "setting 'feature_layers' must hold layer names (strings), got (1, 2)"),
        (["--device", "banana"], "--device 'banana': expected cpu, cuda, cuda:N or mps"),
        (["--device", "meta"], "--device 'meta': expected cpu, cuda, cuda:N or mps"),
    ],
)
def test_numbers_outside_a_setting_are_refused_before_the_model_loads(inputs, args, message, capsys, monkeypatch):
    import sgi2v_lite.models

    monkeypatch.setattr(sgi2v_lite.models, "load_pipeline", lambda *a, **k: pytest.fail("the model was loaded"))
    out = inputs / "video.npz"
    argv = ["generate", "--image", str(inputs / "image.png"), "--tracks", str(inputs / "tracks.json")]
    code, err = run([*argv, "--out", str(out), "--model", "tiny-random", *args], capsys)
    assert code == 2
    assert_one_line(err, "error: ", message)
    assert len(err) < 300 and not out.exists()


def test_an_unknown_feature_layer_is_named(inputs, capsys):
    argv = ["generate", "--image", str(inputs / "image.png"), "--out", str(inputs / "v.npz"), *FAST]
    code, err = run([*argv, "--set", 'feature_layers=["up_blocks.9.nothing"]'], capsys)
    assert code == 2
    assert_one_line(err, "error: setting 'feature_layers': ", "'up_blocks.9.nothing' is not a spatial self-attention")


# ------------------------------------------------------------------------ output paths
def test_outputs_that_cannot_be_files_are_refused_before_the_run(inputs, capsys):
    (inputs / "folder.npz").mkdir()
    image = ["generate", "--image", str(inputs / "image.png"), *FAST]
    cases = [
        (["--out", str(inputs / "folder.npz")], "is a folder; give a file name"),
        (["--out", str(inputs / "image.png" / "v.npz")], f"{inputs / 'image.png'} is a file, not a folder"),
        (["--out", str(inputs / "v.npz"), "--strip", str(inputs / "strip.txt")], "expected a .png path"),
    ]
    for args, message in cases:
        code, err = run([*image, *args], capsys)
        assert code == 2
        assert_one_line(err, "error: ", message)
    assert sorted(p.name for p in inputs.iterdir()) == ["folder.npz", "image.png", "tracks.json"]


# ------------------------------------------------------------------- other subcommands
@pytest.mark.parametrize(
    "argv, message",
    [
        (["tracks", "convert", "{tracks}", "{out}/t.npy", "--frames", "1e9"], "--frames: expected an integer from 2"),
        (["tracks", "convert", "{tracks}", "{out}/t.json", "--image-size", "0", "5"], "--image-size: expected an"),
        (["tracks", "convert", "{nested}", "{out}/t.npy"], "is nested too deeply"),
        (["tracks", "convert", "{tracks}", "{folder}"], "output {folder} is a folder"),
        (["tracks", "convert", "{tracks}", "{out}/t.npy", "--image", "{bomb}"], "too large to decode safely"),
        (["toy", "scene", "--out", "{out}", "--size", str(10**9)], "--size: expected an integer from 8 to 2048"),
        (["toy", "scene", "--out", "{out}", "--seed", "-1"], "--seed: expected an integer from 0 to"),
        (["toy", "scene", "--out", "{out}", "--frames", str(10**6)], "--frames: expected an integer from 1 to 128"),
        (["toy", "scene", "--out", "{tracks}"], "is a file; toy scene writes a folder"),
        (["evaluate", "--scenes", str(10**9), "--out", "{out}/t.md"], "--scenes: expected an integer from 1 to 1000"),
        (["evaluate", "--seed", "-5", "--out", "{out}/t.md"], "--seed: expected an integer from 0 to"),
        (["evaluate", "--set", "learning_rate=NaN", "--out", "{out}/t.md"], "setting 'learning_rate' must be a number"),
        (["evaluate", "--set", "height=4096", "--out", "{out}/t.md"], "setting 'height' must be an integer from 1"),
        (["evaluate", "--out", "{folder}"], "output {folder} is a folder"),
    ],
)
def test_other_subcommands_refuse_hostile_input(tmp_path, tiny_tracks, argv, message, capsys, monkeypatch):
    import sgi2v_lite.models

    monkeypatch.setattr(sgi2v_lite.models, "load_pipeline", lambda *a, **k: pytest.fail("the model was loaded"))
    tiny_tracks.save(tmp_path / "tracks.json")
    (tmp_path / "nested.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "bomb.png").write_bytes(png_header(100_000, 100_000))
    (tmp_path / "folder.npy").mkdir()
    names = dict(
        tracks=tmp_path / "tracks.json",
        nested=tmp_path / "nested.json",
        bomb=tmp_path / "bomb.png",
        folder=tmp_path / "folder.npy",
        out=tmp_path / "out",
    )
    code, err = run([arg.format(**names) for arg in argv], capsys)
    assert code == 2
    assert_one_line(err, "error: ", message.format(**names))
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- Ctrl-C
def interrupt_at_step(monkeypatch, step: int) -> None:
    """Make generation raise KeyboardInterrupt (what Ctrl-C raises) inside its denoising loop."""
    import sgi2v_lite.sampler

    real = sgi2v_lite.sampler.generate

    def generate(*args, **kwargs):
        def callback(info):
            if info["step"] == step:
                raise KeyboardInterrupt

        return real(*args, **{**kwargs, "callback": callback})

    monkeypatch.setattr(sgi2v_lite.sampler, "generate", generate)


def test_ctrl_c_during_generation_exits_130_and_leaves_the_old_files(inputs, capsys, monkeypatch):
    interrupt_at_step(monkeypatch, 1)
    out, strip = inputs / "video.npz", inputs / "strip.png"
    out.write_bytes(b"the previous video")
    argv = ["generate", "--image", str(inputs / "image.png"), "--tracks", str(inputs / "tracks.json")]
    code, err = run([*argv, "--out", str(out), "--strip", str(strip), *FAST], capsys)
    assert code == 130
    assert err == INTERRUPTED
    assert out.read_bytes() == b"the previous video"
    assert sorted(p.name for p in inputs.iterdir()) == ["image.png", "tracks.json", "video.npz"]


def test_ctrl_c_while_writing_leaves_no_partial_file_and_a_full_run_replaces_the_old_one(inputs, capsys, monkeypatch):
    """Interrupted while the strip is written (after the video): neither the half-written strip nor
    the finished video takes the place of the old files. Without the interruption both do."""
    import sgi2v_lite.viz
    from sgi2v_lite.video import read_video

    out, strip = inputs / "video.npz", inputs / "strip.png"
    out.write_bytes(b"the previous video")
    strip.write_bytes(b"the previous strip")
    save_png = sgi2v_lite.viz.save_png

    def half_written(path, image):
        with open(path, "wb") as file:
            file.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(sgi2v_lite.viz, "save_png", half_written)
    argv = ["generate", "--image", str(inputs / "image.png"), "--out", str(out), "--strip", str(strip), *FAST]
    code, err = run(argv, capsys)
    assert (code, err) == (130, INTERRUPTED)
    assert out.read_bytes() == b"the previous video" and strip.read_bytes() == b"the previous strip"
    assert sorted(p.name for p in inputs.iterdir()) == ["image.png", "strip.png", "tracks.json", "video.npz"]

    monkeypatch.setattr(sgi2v_lite.viz, "save_png", save_png)
    assert run(argv, capsys)[0] == 0
    assert read_video(out).shape == (4, 32, 32, 3) and strip.read_bytes().startswith(b"\x89PNG\r\n")
    assert sorted(p.name for p in inputs.iterdir()) == ["image.png", "strip.png", "tracks.json", "video.npz"]


def test_a_failed_write_is_one_line_and_keeps_the_old_file(tmp_path, tiny_tracks, capsys, monkeypatch):
    """A full disk while `tracks convert` writes: exit 2, the cause named, the old file kept, no partial file."""
    tiny_tracks.save(tmp_path / "tracks.json")
    out = tmp_path / "t.npy"
    out.write_bytes(b"the previous array")

    def disk_full(path, array):
        with open(path, "wb") as file:
            file.write(b"\x93NUMPY half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    code, err = run(["tracks", "convert", str(tmp_path / "tracks.json"), str(out)], capsys)
    assert code == 2
    assert_one_line(err, "error: ", f"cannot write {out}: No space left on device")
    assert out.read_bytes() == b"the previous array"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npy", "tracks.json"]


def test_ctrl_c_in_toy_scene_writes_none_of_its_files(tmp_path, capsys, monkeypatch):
    import sgi2v_lite.video

    def interrupted(path, frames, fps=7):
        path.write_bytes(b"GIF89a half")
        raise KeyboardInterrupt

    monkeypatch.setattr(sgi2v_lite.video, "write_video", interrupted)
    code, err = run(["toy", "scene", "--out", str(tmp_path / "scene"), "--video"], capsys)
    assert (code, err) == (130, INTERRUPTED)
    assert list((tmp_path / "scene").iterdir()) == []
