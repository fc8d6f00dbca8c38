import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REFERENCE_TRAJ, ROOT
from PIL import Image

from sgi2v_lite.cli import main
from sgi2v_lite.video import read_video

FAST = ["--model", "tiny-random", "--steps", "3", "--height", "32", "--width", "32", "--set", "iterations=2", "--quiet"]


@pytest.fixture
def inputs(tmp_path, tiny_image, tiny_tracks):
    tiny_image.save(tmp_path / "image.png")
    tiny_tracks.save(tmp_path / "tracks.json")
    return tmp_path


@pytest.mark.parametrize("suffix", [".npz", ".mp4", ".gif"])
def test_generate_writes_a_video_with_f_frames(inputs, suffix, capsys):
    out = inputs / f"video{suffix}"
    code = main(
        [
            "generate",
            "--image",
            str(inputs / "image.png"),
            "--tracks",
            str(inputs / "tracks.json"),
            "--out",
            str(out),
            "--overlay",
            *FAST,
        ]
    )
    assert code == 0
    frames = read_video(out)
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    assert "wrote" in capsys.readouterr().out


def test_overlay_draws_the_track_colours(inputs):
    plain, overlaid = inputs / "plain.npz", inputs / "overlay.npz"
    common = ["generate", "--image", str(inputs / "image.png"), "--tracks", str(inputs / "tracks.json"), *FAST]
    assert main([*common, "--out", str(plain)]) == 0
    assert main([*common, "--out", str(overlaid), "--overlay"]) == 0
    a, b = read_video(plain), read_video(overlaid)
    changed = (a != b).any(-1)  # (F, H, W)
    assert changed.any(axis=(1, 2)).all()  # every frame has its boxes drawn
    assert (b[0][changed[0]] == (230, 25, 75)).all(-1).any()  # track 0's colour


def test_python_dash_m_entry_point(inputs):
    out = inputs / "v.npz"
    result = subprocess.run(
        [sys.executable, "-m", "sgi2v_lite", "generate", "--image", str(inputs / "image.png"), "--out", str(out)]
        + ["--tracks", str(inputs / "tracks.json"), "--no-guidance", "--strip", str(inputs / "strip.png"), *FAST],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "unguided" in result.stdout and out.is_file() and (inputs / "strip.png").is_file()
    strip = np.asarray(Image.open(inputs / "strip.png"))
    assert strip.shape[0] == 192  # 32 px frames enlarged x6 to reach STRIP_MIN_HEIGHT


def test_frame_strip_enlarges_small_frames_by_whole_blocks():
    from sgi2v_lite.viz import frame_strip

    frames = np.random.default_rng(0).integers(0, 255, (3, 5, 4, 3), dtype=np.uint8)
    strip = frame_strip(frames, min_height=12)  # ceil(12 / 5) = x3
    assert strip.shape == (15, 3 * 12 + 2 * 2, 3)
    np.testing.assert_array_equal(strip[:, :12], frames[0].repeat(3, axis=0).repeat(3, axis=1))
    np.testing.assert_array_equal(strip[:, -12:], frames[2].repeat(3, axis=0).repeat(3, axis=1))
    assert (strip[:, 12:14] == 255).all()
    assert frame_strip(frames).shape == (5, 3 * 4 + 2 * 2, 3)


def bad(inputs, tmp_path):
    nan_tracks = tmp_path / "nan.json"
    nan_tracks.write_text('{"image_size": [64, 64], "tracks": [{"box": [1, NaN, 3, 4], "path": [[1, 1]]}]}')
    broken = tmp_path / "broken.json"
    broken.write_text('{"image_size": [64, 64], "tracks": [{"box": [1, 2')
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    inverted = tmp_path / "inverted.json"
    inverted.write_text(json.dumps({"image_size": [64, 64], "tracks": [{"box": [30, 10, 20, 20], "path": [[1, 1]]}]}))
    image, tracks = str(inputs / "image.png"), str(inputs / "tracks.json")
    return [
        (["--image", str(tmp_path / "missing.png"), "--tracks", tracks], "image not found"),
        (["--image", str(not_image), "--tracks", tracks], "cannot read image"),
        (["--image", image, "--tracks", str(broken)], "is not valid JSON"),
        (["--image", image, "--tracks", str(nan_tracks)], "track 0: field 'box'[1]: expected a finite number"),
        (["--image", image, "--tracks", str(inverted)], "track 0: field 'box': x1 (20) must be greater than x0 (30)"),
        (["--image", image, "--tracks", str(tmp_path / "none.json")], "tracks file not found"),
        (["--image", image, "--model", "sdxl"], "unknown model 'sdxl'"),
        (["--image", image, "--model", str(tmp_path)], "holds no model_index.json"),
        (["--image", image, "--steps", "0"], "--steps: expected an integer from 1 to 1000, got 0"),
        (["--image", image, "--frames", "-3"], "--frames: expected an integer from 2 to 128, got -3"),
        (["--image", image, "--frames", "1"], "--frames: expected an integer from 2 to 128, got 1"),
        (["--image", image, "--steps", "x"], "--steps: expected an integer from 1 to 1000, got 'x'"),
        (["--image", image, "--preset", "fast"], "invalid choice: 'fast'"),
        (["--image", image, "--height", "50"], "'height' must be a multiple of 4"),
        (["--image", image, "--set", "learning_rate"], "expected KEY=VALUE"),
        (["--image", image, "--set", "frequency_mix=maybe"], "expected true or false, e.g. True"),
    ]


def test_every_bad_input_is_one_line_and_exit_2(inputs, tmp_path, capsys):
    for args, message in bad(inputs, tmp_path):
        out = "--out", str(tmp_path / "v.npz")
        argv = ["generate", *args, *out] + (["--model", "tiny-random"] if "--model" not in args else [])
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse's own checks exit from inside
            code = stop.code
        assert code == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err, (args, err)
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err


def test_bad_output_suffix(inputs, capsys):
    assert main(["generate", "--image", str(inputs / "image.png"), "--out", str(inputs / "v.avi"), *FAST]) == 2
    assert "unknown video type '.avi'" in capsys.readouterr().err


def test_rgba_greyscale_and_odd_sizes_work(tmp_path):
    from PIL import Image

    for mode, size in (("RGBA", (101, 77)), ("L", (50, 130)), ("P", (64, 64))):
        path = tmp_path / f"{mode}.png"
        Image.new(mode, size).save(path)
        tracks = tmp_path / "t.json"
        w, h = size
        tracks.write_text(
            json.dumps(
                {"image_size": [w, h], "tracks": [{"box": [0, 0, w / 2, h / 2], "path": [[w / 4, h / 4], [w, h]]}]}
            )
        )
        out = tmp_path / f"{mode}.npz"
        assert main(["generate", "--image", str(path), "--tracks", str(tracks), "--out", str(out), *FAST]) == 0
        assert read_video(out).shape == (4, 32, 32, 3)


def test_tracks_convert_round_trip(tmp_path, capsys):
    source = REFERENCE_TRAJ[0]
    assert main(["tracks", "convert", str(source), str(tmp_path / "t.json")]) == 0
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["image_size"] == [1024, 576] and len(data["tracks"]) == np.load(source).shape[0]
    assert main(["tracks", "convert", str(tmp_path / "t.json"), str(tmp_path / "t.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), np.load(source))
    # --image takes the size from the image
    from PIL import Image

    Image.new("RGB", (2048, 1152)).save(tmp_path / "big.png")
    assert (
        main(["tracks", "convert", str(source), str(tmp_path / "big.json"), "--image", str(tmp_path / "big.png")]) == 0
    )
    assert json.loads((tmp_path / "big.json").read_text())["image_size"] == [2048, 1152]
    # resampling to another frame count on export
    assert main(["tracks", "convert", str(tmp_path / "t.json"), str(tmp_path / "t25.npy"), "--frames", "25"]) == 0
    assert np.load(tmp_path / "t25.npy").shape[1] == 27
    assert main(["tracks", "convert", str(tmp_path / "t.json"), str(tmp_path / "t.txt")]) == 2
    assert "expected a .json or .npy path" in capsys.readouterr().err


def test_evaluate_prints_and_writes_the_table_and_applies_its_settings(tmp_path, capsys):
    """`evaluate` on one held-out toy scene: the table (header, real videos, real videos through the
    VAE, the asked row) goes to stdout and --out; --set changes every row's settings (a still motion
    bucket moves the object less, so ObjMC changes); unknown rows and settings are named errors."""

    def objmc(*extra):
        out = tmp_path / f"table{len(extra)}.md"
        assert (
            main(["evaluate", "--model", "toy", "--scenes", "1", "--rows", "unguided", "--out", str(out), *extra]) == 0
        )
        lines = out.read_text().splitlines()
        assert [line.split(" | ")[0] for line in lines[2:]] == [
            "| real videos (their own motion)",
            "| real videos through the VAE",
            "| unguided",
        ]
        assert all(line.count("|") == 10 for line in lines)
        return float(lines[4].split(" | ")[1])

    default, still = objmc(), objmc("--set", "motion_bucket_id=0")
    printed = capsys.readouterr().out
    assert "| unguided |" in printed and "toy preset with motion_bucket_id=0" in printed
    assert abs(default - still) > 0.1
    assert main(["evaluate", "--model", "toy", "--rows", "unguided,no such row"]) == 2
    assert main(["evaluate", "--model", "toy", "--set", "motion_bucket=3"]) == 2
    err = capsys.readouterr().err
    assert "'no such row'" in err and "motion_bucket=3" in err
