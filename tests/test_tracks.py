import json

import numpy as np
import pytest
from conftest import REFERENCE_TRAJ

from sgi2v_lite.errors import InputError
from sgi2v_lite.tracks import (
    boxes_to_grid,
    clip_cells,
    from_reference_traj,
    load_reference_traj,
    load_tracks,
    parse_tracks,
    resample_path,
    to_reference_traj,
)


def test_all_reference_files_are_present():
    assert len(REFERENCE_TRAJ) == 66


@pytest.mark.parametrize("path", REFERENCE_TRAJ, ids=lambda p: p.stem)
def test_reference_traj_round_trip(path, tmp_path):
    traj = np.load(path)  # (N, 2 + F, 2)
    tracks = load_reference_traj(path)
    assert len(tracks) == traj.shape[0]
    assert tracks.image_size == (1024, 576)
    # through JSON and back: every number survives
    tracks.save(tmp_path / "t.json")
    again = load_tracks(tmp_path / "t.json")
    np.testing.assert_array_equal(to_reference_traj(again, traj.shape[1] - 2), traj)
    # the per-frame boxes are the first box translated by the centre's displacement
    boxes = again.boxes_per_frame(traj.shape[1] - 2)
    displacement = traj[:, 2:] - traj[:, 2:3]
    np.testing.assert_allclose(boxes[..., :2], traj[:, :1] + displacement)
    np.testing.assert_allclose(boxes[..., 2:], traj[:, 1:2] + displacement)


def test_reference_anchors_are_static():
    static = sum(t.is_static for p in REFERENCE_TRAJ for t in load_reference_traj(p).tracks)
    assert static == 21  # the fixtures' README: 21 of the 128 boxes never move


def test_exactly_f_points_are_kept():
    path = [[0, 0], [5, 1], [5, 9], [1, 1]]
    np.testing.assert_array_equal(resample_path(path, 4), np.array(path, float))


def test_resampling_is_uniform_in_arc_length():
    # an L-shaped path: 10 px right then 10 px down, resampled to 5 frames -> 5 px apart
    out = resample_path([[0, 0], [10, 0], [10, 10]], 5)
    np.testing.assert_allclose(out, [[0, 0], [5, 0], [10, 0], [10, 5], [10, 10]])
    steps = np.linalg.norm(
        np.diff(resample_path([[0, 0], [1, 1], [30, 30]], 14), axis=0), axis=1
    )  # unevenly spaced input
    np.testing.assert_allclose(steps, steps[0])


def test_one_point_or_repeated_points_are_static():
    np.testing.assert_array_equal(resample_path([[3, 4]], 6), np.tile([3.0, 4.0], (6, 1)))
    np.testing.assert_array_equal(resample_path([[3, 4], [3, 4], [3, 4]], 5), np.tile([3.0, 4.0], (5, 1)))
    # a repeated point inside a moving path does not break the interpolation
    assert np.isfinite(resample_path([[0, 0], [0, 0], [8, 0]], 5)).all()


def test_rescale_to_generation_size():
    tracks = parse_tracks(
        {"image_size": [100, 50], "tracks": [{"box": [10, 10, 30, 20], "path": [[20, 15], [60, 25]]}]}
    )
    big = tracks.rescaled((200, 200))
    assert big.image_size == (200, 200)
    assert big.tracks[0].box == (20, 40, 60, 80)
    assert big.tracks[0].path == [(40, 60), (120, 100)]


def test_boxes_to_grid_floor_min_cell_and_skip_but_no_clip():
    boxes = np.array(
        [
            [
                [17, 9, 40, 31],  # floor division by 8 -> (2, 1, 5, 3)
                [3, 3, 5, 5],  # smaller than a cell -> at least 1 x 1
                [-20, 60, 12, 90],  # partly outside -> kept whole (the loss crops it)
                [70, 70, 90, 90],  # wholly outside -> invalid (skipped)
            ]
        ],
        float,
    )
    cells, valid = boxes_to_grid(boxes, 8, (8, 8))
    assert cells[0, 0].tolist() == [2, 1, 5, 3]
    assert cells[0, 1].tolist() == [0, 0, 1, 1]
    assert cells[0, 2].tolist() == [-3, 7, 1, 11]
    assert clip_cells(cells, (8, 8))[0, 2].tolist() == [0, 7, 1, 8]
    assert valid[0].tolist() == [True, True, True, False]


def test_a_frame0_box_sticking_out_is_clipped_then_translated():
    # frame 0's box sticks 16 px out on the left of a 64 px image; it then moves 24 px right
    boxes = np.array([[[-16, 8, 16, 24], [8, 8, 40, 24]]], float)
    cells, valid = boxes_to_grid(boxes, 8, (8, 8))
    assert cells[0, 0].tolist() == [0, 1, 2, 3]  # only the visible 16 px are a target
    assert cells[0, 1].tolist() == [3, 1, 5, 3]  # ... and that visible part moves by 24 px
    assert valid[0].all()


def test_paths_may_leave_the_image_after_frame_0():
    tracks = parse_tracks({"image_size": [64, 64], "tracks": [{"box": [40, 8, 56, 24], "path": [[48, 16], [200, 16]]}]})
    cells, valid = boxes_to_grid(tracks.boxes_per_frame(8), 8, (8, 8))
    assert valid[0, 0] and not valid[0, -1]


GOOD_TRACK = {"box": [10, 10, 20, 20], "path": [[15, 15], [30, 30]]}
BAD_INPUTS = [
    ([1, 2], "expected a JSON object"),
    ({"tracks": [GOOD_TRACK]}, "missing field 'image_size'"),
    ({"image_size": [64, 64]}, "missing field 'tracks'"),
    ({"image_size": [64], "tracks": [GOOD_TRACK]}, "'image_size': expected 2 numbers"),
    ({"image_size": [0, 64], "tracks": [GOOD_TRACK]}, "positive integers"),
    ({"image_size": [64, 64], "tracks": []}, "the list is empty"),
    ({"image_size": [64, 64], "tracks": [GOOD_TRACK, {"path": [[1, 1]]}]}, "track 1: missing field 'box'"),
    ({"image_size": [64, 64], "tracks": [{"box": [1, 2, 3, 4]}]}, "track 0: missing field 'path'"),
    (
        {"image_size": [64, 64], "tracks": [{"box": [1, 2, 3], "path": [[1, 1]]}]},
        "track 0: field 'box': expected 4 numbers",
    ),
    (
        {"image_size": [64, 64], "tracks": [{"box": [1, "a", 3, 4], "path": [[1, 1]]}]},
        "track 0: field 'box'[1]: expected a number",
    ),
    ({"image_size": [64, 64], "tracks": [{"box": [1, float("nan"), 3, 4], "path": [[1, 1]]}]}, "finite number"),
    (
        {"image_size": [64, 64], "tracks": [{"box": [30, 10, 20, 20], "path": [[1, 1]]}]},
        "x1 (20) must be greater than x0 (30)",
    ),
    (
        {"image_size": [64, 64], "tracks": [{"box": [10, 20, 20, 20], "path": [[1, 1]]}]},
        "y1 (20) must be greater than y0 (20)",
    ),
    (
        {"image_size": [64, 64], "tracks": [{"box": [70, 10, 90, 20], "path": [[1, 1]]}]},
        "lies outside the 64 x 64 image",
    ),
    (
        {"image_size": [64, 64], "tracks": [{"box": [1, 2, 3, 4], "path": []}]},
        "track 0: field 'path': expected a non-empty list",
    ),
    (
        {"image_size": [64, 64], "tracks": [{"box": [1, 2, 3, 4], "path": [[1, 1], [2]]}]},
        "track 0: field 'path' point 1: expected 2 numbers",
    ),
    (
        {"image_size": [64, 64], "tracks": [{"box": [1, 2, 3, 4], "path": [[1, True]]}]},
        "field 'path' point 0[1]: expected a number",
    ),
]


@pytest.mark.parametrize("data, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_tracks_name_the_problem(data, message):
    with pytest.raises(InputError) as err:
        parse_tracks(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_json_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"image_size": [64, 64], "tracks": [')
    with pytest.raises(InputError, match="not valid JSON"):
        load_tracks(path)
    with pytest.raises(InputError, match="not found"):
        load_tracks(tmp_path / "missing.json")


def test_bad_reference_array():
    with pytest.raises(InputError, match=r"shape \(N, 2 \+ F, 2\)"):
        from_reference_traj(np.zeros((2, 5)))


def test_json_written_is_the_documented_format(tmp_path):
    tracks = parse_tracks({"image_size": [64, 48], "tracks": [GOOD_TRACK]})
    tracks.save(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data == {
        "image_size": [64, 48],
        "tracks": [{"box": [10.0, 10.0, 20.0, 20.0], "path": [[15.0, 15.0], [30.0, 30.0]]}],
    }
