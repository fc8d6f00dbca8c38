"""The drawing widget, driven by the messages a browser sends.

ipycanvas routes a front end's mouse events through the canvas widget's `_handle_custom_msg` with
``{"event": "mouse_down" | "mouse_move" | "mouse_up", "x": float, "y": float}`` in canvas pixels
(a MultiCanvas hands them to its top layer); these tests send exactly those and check the tracks,
the autosaved JSON and what the widget shows. No browser, no kernel: the widget's outgoing
messages go nowhere."""

import io
import json

import numpy as np
import pytest
from conftest import REFERENCE_TRAJ
from PIL import Image

from sgi2v_lite.config import get_preset
from sgi2v_lite.tracks import Tracks, load_reference_traj, load_tracks, resample_path
from sgi2v_lite.viz import track_colour
from sgi2v_lite.widgets import TrackEditor, camera_motion

F = 5  # frames of the widget's videos in these tests


def send(editor, event, x, y):
    """One browser mouse event, as ipycanvas's front end sends it."""
    editor.canvas._handle_custom_msg({"event": event, "x": float(x), "y": float(y)}, [])


def drag(editor, start, end, steps=4):
    """Press at `start`, move in `steps` straight steps, release at `end` (canvas pixels)."""
    send(editor, "mouse_down", *start)
    for t in np.linspace(0, 1, steps + 1)[1:-1]:
        send(editor, "mouse_move", *(np.asarray(start) + t * (np.asarray(end) - start)))
    send(editor, "mouse_up", *end)


def press_key(editor, key, ctrl=False):
    content = {"event": "key_down", "key": key, "shift_key": False, "ctrl_key": ctrl, "meta_key": False}
    editor.canvas._handle_custom_msg(content, [])


@pytest.fixture
def wide_image():
    """200 x 100 pixels: shown at 2.5x (500 x 250) in a 500 x 500 display area."""
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, 200).astype(np.uint8)
    return Image.fromarray(rgb)


@pytest.fixture
def editor(wide_image, tmp_path):
    return TrackEditor(wide_image, num_frames=F, autosave_path=tmp_path / "autosave.json", display_size=(500, 500))


def autosaved(editor):
    return json.loads(editor.autosave_path.read_text())


# ------------------------------------------------------------------------------ boxes
def test_drag_draws_a_box_in_image_pixels_despite_display_scaling(editor):
    assert (editor.canvas.width, editor.canvas.height) == (500, 250)
    drag(editor, (25.0, 50.0), (125.5, 150.25))
    assert editor.tracks.to_dict() == {
        "image_size": [200, 100],
        "tracks": [{"box": [10.0, 20.0, 50.2, 60.1], "path": [[30.1, 40.05]]}],  # a new box is static
    }
    assert autosaved(editor) == editor.tracks.to_dict()
    assert editor.state.selected == 0


def test_box_dragged_up_left_and_past_the_edge_is_ordered_and_clipped(editor):
    send(editor, "mouse_down", 100.0, 200.0)
    send(editor, "mouse_move", 60.0, 100.0)
    send(editor, "mouse_out", -30.0, -12.5)  # leaving the canvas ends the drag where the mouse was
    assert editor.tracks.tracks[0].box == (0.0, 0.0, 40.0, 80.0)
    send(editor, "mouse_up", 10.0, 10.0)  # the release after it changes nothing
    assert len(editor.tracks) == 1


def test_click_on_empty_space_draws_nothing_and_deselects(editor):
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    send(editor, "mouse_down", 300.0, 200.0)
    send(editor, "mouse_up", 300.5, 200.5)
    assert len(editor.tracks) == 1
    assert editor.state.selected is None


# ------------------------------------------------------------------------------ paths
def test_drag_from_inside_a_box_draws_its_path_resampled_to_F_dots(editor, monkeypatch):
    drag(editor, (25.0, 50.0), (125.0, 150.0))  # box (10, 20, 50, 60), centre (30, 40)
    dots_drawn = []
    overlay = editor.canvas[1]
    monkeypatch.setattr(overlay, "fill_circles", lambda x, y, r: dots_drawn.append(np.stack([x, y], 1)))

    # an L: 40 image px right in many small moves, then 40 px down in one move
    send(editor, "mouse_down", 50.0, 75.0)
    for step in range(1, 21):
        send(editor, "mouse_move", 50.0 + step * 5.0, 75.0)
    send(editor, "mouse_up", 150.0, 175.0)

    path = np.array(editor.tracks.tracks[0].path)
    # by arc length, not by mouse event: the corner is the middle frame; the path starts at the centre
    np.testing.assert_allclose(path, [[30, 40], [50, 40], [70, 40], [70, 60], [70, 80]], atol=0.01)
    assert editor.tracks.tracks[0].box == (10.0, 20.0, 50.0, 60.0)  # the box itself stays put
    assert autosaved(editor)["tracks"][0]["path"] == path.tolist()
    np.testing.assert_allclose(editor.state.preview_dots(0), resample_path(path, F))
    # the last picture painted shows the F dots, in canvas pixels
    np.testing.assert_allclose(dots_drawn[-1], path * 2.5, atol=0.05)


def test_dots_follow_the_stroke_while_it_is_drawn(editor, monkeypatch):
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    dots_drawn = []
    monkeypatch.setattr(editor.canvas[1], "fill_circles", lambda x, y, r: dots_drawn.append(len(x)))
    send(editor, "mouse_down", 75.0, 100.0)
    send(editor, "mouse_move", 175.0, 100.0)
    assert dots_drawn == [F]  # the preview during the drag: F dots, before any release
    assert editor.tracks.tracks[0].is_static  # nothing changes until the release


def test_click_inside_a_box_only_selects_it(editor):
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    drag(editor, (300.0, 50.0), (400.0, 150.0))
    assert editor.state.selected == 1
    before = editor.tracks.to_dict()
    send(editor, "mouse_down", 75.0, 100.0)
    send(editor, "mouse_up", 75.5, 100.0)
    assert editor.state.selected == 0
    assert editor.tracks.to_dict() == before
    assert "&larr; selected" in editor.track_list.value.split("<br>")[1]  # the list marks track 0


def test_several_tracks_each_in_its_own_colour(editor, monkeypatch):
    for n in range(3):
        drag(editor, (25.0 + 150 * n, 50.0), (125.0 + 150 * n, 150.0))
    boxes_drawn = []
    overlay = editor.canvas[1]
    monkeypatch.setattr(overlay, "stroke_rect", lambda *box: boxes_drawn.append(overlay.stroke_style))
    editor.canvas._handle_custom_msg({"event": "client_ready"}, [])  # a new view appears: repaint
    expected = [f"rgba({r}, {g}, {b}, 1.0)" for r, g, b in map(track_colour, range(3))]
    assert boxes_drawn == expected
    assert len(set(expected)) == 3


# --------------------------------------------------------------- select, move, delete, undo
def test_move_mode_moves_box_and_path_together(editor):
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    drag(editor, (75.0, 100.0), (175.0, 100.0))  # a path 40 px to the right
    editor.mode_buttons.value = "move"
    drag(editor, (60.0, 60.0), (85.0, 85.0))  # from inside the box: 10 px right, 10 px down
    track = editor.tracks.tracks[0]
    assert track.box == (20.0, 30.0, 60.0, 70.0)
    np.testing.assert_allclose(track.path, [[40 + 10 * i, 50] for i in range(F)], atol=0.01)
    assert autosaved(editor)["tracks"][0]["box"] == [20.0, 30.0, 60.0, 70.0]
    drag(editor, (400.0, 200.0), (450.0, 220.0))  # in move mode, empty space draws no box
    assert len(editor.tracks) == 1


def test_delete_button_and_key_remove_the_selected_track(editor):
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    drag(editor, (300.0, 50.0), (400.0, 150.0))
    drag(editor, (200.0, 160.0), (260.0, 240.0))
    send(editor, "mouse_down", 350.0, 100.0)  # select track 1
    send(editor, "mouse_up", 350.0, 100.0)
    editor.delete_button.click()
    assert [t.box for t in editor.tracks.tracks] == [(10.0, 20.0, 50.0, 60.0), (80.0, 64.0, 104.0, 96.0)]
    assert len(autosaved(editor)["tracks"]) == 2
    send(editor, "mouse_down", 75.0, 100.0)
    send(editor, "mouse_up", 75.0, 100.0)
    press_key(editor, "Delete")
    assert [t.box for t in editor.tracks.tracks] == [(80.0, 64.0, 104.0, 96.0)]


def test_undo_steps_back_through_every_change(editor):
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    drawn_box = editor.tracks.to_dict()
    drag(editor, (75.0, 100.0), (175.0, 100.0))
    assert not editor.tracks.tracks[0].is_static
    editor.undo_button.click()
    assert editor.tracks.to_dict() == drawn_box
    assert autosaved(editor) == drawn_box  # undo autosaves too
    press_key(editor, "z", ctrl=True)
    assert len(editor.tracks) == 0 and autosaved(editor)["tracks"] == []
    editor.undo_button.click()
    assert editor.last_error == "nothing to undo"


def test_anchor_button_makes_the_selected_track_static(editor):
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    drag(editor, (75.0, 100.0), (175.0, 100.0))
    editor.anchor_button.click()
    assert editor.tracks.tracks[0].path == [(30.0, 40.0)]
    assert editor.tracks.tracks[0].is_static
    assert autosaved(editor)["tracks"][0]["path"] == [[30.0, 40.0]]
    assert "static (anchor)" in editor.track_list.value


# ---------------------------------------------------------------------- camera presets
def _spread(tracks: Tracks, frame: int) -> float:
    """Mean distance of the box centres from the image centre at `frame`."""
    centre = np.array(tracks.image_size) / 2
    return float(np.linalg.norm(tracks.centres(F)[:, frame] - centre, axis=-1).mean())


def test_camera_presets_add_diverging_converging_and_parallel_boxes(editor):
    editor.camera_choice.value = "zoom in"
    editor.camera_button.click()
    zoom_in = editor.tracks
    assert len(zoom_in) == 4
    spreads = [_spread(zoom_in, f) for f in range(F)]
    assert all(b > a for a, b in zip(spreads, spreads[1:]))  # moving apart: the scene grows

    editor.clear_button.click()
    editor.camera_choice.value = "zoom out"
    editor.camera_button.click()
    spreads = [_spread(editor.tracks, f) for f in range(F)]
    assert all(b < a for a, b in zip(spreads, spreads[1:]))

    editor.clear_button.click()
    editor.camera_choice.value = "pan right"
    editor.camera_button.click()
    moves = editor.tracks.centres(F)[:, -1] - editor.tracks.centres(F)[:, 0]  # (4, 2)
    np.testing.assert_allclose(moves, [[-40.0, 0.0]] * 4)  # all alike: the scene slides left
    assert len(autosaved(editor)["tracks"]) == 4


def test_camera_motion_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown camera motion 'spin'"):
        camera_motion("spin", (100, 100), F)


# ---------------------------------------------------------------------- files
def test_save_and_load_round_trip(editor, tmp_path):
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    drag(editor, (75.0, 100.0), (175.0, 160.0))
    drag(editor, (300.0, 50.0), (400.0, 150.0))
    drawn = editor.tracks.to_dict()
    editor.file_path.value = str(tmp_path / "sub" / "mine.json")
    editor.save_button.click()
    assert load_tracks(tmp_path / "sub" / "mine.json").to_dict() == drawn
    editor.clear_button.click()
    assert len(editor.tracks) == 0
    editor.load_button.click()
    assert editor.tracks.to_dict() == drawn
    assert autosaved(editor) == drawn
    assert "loaded 2 track(s)" in editor.message.value


def test_loading_tracks_of_another_image_size_rescales_them(editor, tmp_path):
    other = tmp_path / "other.json"
    track = {"box": [20, 40, 100, 120], "path": [[60, 80], [160, 80]]}
    other.write_text(json.dumps({"image_size": [400, 200], "tracks": [track]}))
    editor.load(other)
    halved = {"box": [10.0, 20.0, 50.0, 60.0], "path": [[30.0, 40.0], [80.0, 40.0]]}
    assert editor.tracks.to_dict()["tracks"] == [halved]


def test_import_reference_traj_npy(tmp_path):
    """The reference's traj.npy is drawn on 1024 x 576: on a 512 x 288 image every number halves."""
    editor = TrackEditor(np.zeros((288, 512, 3), np.uint8), num_frames=14, autosave_path=tmp_path / "a.json")
    traj_file = REFERENCE_TRAJ[0]
    traj = np.load(traj_file)  # (N, 2 + F, 2)
    editor.file_path.value = str(traj_file)
    editor.load_button.click()
    assert editor.last_error is None
    tracks = editor.tracks
    assert len(tracks) == traj.shape[0]
    for n, track in enumerate(tracks.tracks):
        np.testing.assert_allclose(track.box, traj[n, :2].reshape(4) / 2, atol=0.01)
        np.testing.assert_allclose(track.path, traj[n, 2:] / 2, atol=0.01)
    reference = load_reference_traj(traj_file).rescaled((512, 288))
    np.testing.assert_allclose(tracks.boxes_per_frame(14), reference.boxes_per_frame(14), atol=0.01)
    assert autosaved(editor) == tracks.to_dict()


def test_autosave_is_restored_by_a_new_editor_on_the_same_image(editor, wide_image, tmp_path):
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    drag(editor, (75.0, 100.0), (175.0, 100.0))
    drawn = editor.tracks.to_dict()

    after_restart = TrackEditor(wide_image, num_frames=F, autosave_path=editor.autosave_path)
    assert after_restart.tracks.to_dict() == drawn
    assert "restored 1 track(s)" in after_restart.message.value
    after_restart.undo_button.click()  # the restored tracks are the start, not an undoable step
    assert after_restart.tracks.to_dict() == drawn

    other_image = TrackEditor(np.zeros((50, 50, 3), np.uint8), autosave_path=editor.autosave_path)
    assert len(other_image.tracks) == 0
    assert "not restored" in other_image.message.value


# ---------------------------------------------------------------------- numeric entry
def test_numeric_entry_adds_boxes_and_paths(editor):
    editor.box_entry.value = "10, 20, 50, 60"
    editor.path_entry.value = "30, 40; 70, 40; 70, 80"
    editor.add_button.click()
    editor.box_entry.value = "[100 10 140 50]"
    editor.path_entry.value = ""
    editor.add_button.click()
    assert autosaved(editor)["tracks"] == [
        {"box": [10.0, 20.0, 50.0, 60.0], "path": [[30.0, 40.0], [70.0, 40.0], [70.0, 80.0]]},
        {"box": [100.0, 10.0, 140.0, 50.0], "path": [[120.0, 30.0]]},
    ]


@pytest.mark.parametrize(
    "box, path, message",
    [
        ("10, 20, 5, 60", "", "numeric entry: field 'box': x1 (5) must be greater than x0 (10)"),
        ("10, 20, 50", "", "numeric entry: field 'box': expected 4 numbers [x0, y0, x1, y1], got 3 values"),
        ("10, 20, 50, 60", "1, 2, 3", "numeric entry: path: expected x, y pairs, got 3 numbers"),
        ("ten, 20, 50, 60", "", "numeric entry: box: expected numbers, got 'ten, 20, 50, 60'"),
    ],
)
def test_numeric_entry_errors_are_one_line_in_the_widget(editor, box, path, message):
    editor.box_entry.value, editor.path_entry.value = box, path
    editor.add_button.click()  # no exception escapes
    assert editor.last_error == message
    assert "error:" in editor.message.value
    assert len(editor.tracks) == 0


# ---------------------------------------------------------------------- errors
def test_errors_are_shown_in_the_widget_not_raised(editor, tmp_path):
    editor.generate_button.click()
    assert editor.last_error == "no tracks yet: drag on the image to draw a box first"
    editor.delete_button.click()
    assert editor.last_error == "select a box first (click it), then delete it"
    editor.file_path.value = str(tmp_path / "missing.json")
    editor.load_button.click()
    assert editor.last_error == f"tracks file not found: {tmp_path / 'missing.json'}"
    bad_npy = tmp_path / "bad.npy"
    np.save(bad_npy, np.zeros((2, 3)))
    editor.file_path.value = str(bad_npy)
    editor.load_button.click()
    assert editor.last_error == "reference trajectory: expected an array of shape (N, 2 + F, 2), got (2, 3)"
    assert "Traceback" not in editor.message.value
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    assert editor.last_error is None  # a good change clears the error line


def test_an_unexpected_error_in_generate_is_one_line(wide_image, tmp_path):
    editor = TrackEditor(wide_image, num_frames=F, pipe=object(), autosave_path=None)
    drag(editor, (25.0, 50.0), (125.0, 150.0))
    editor.generate_button.click()
    assert editor.last_error.startswith("AttributeError: 'object' object has no attribute")
    assert "\n" not in editor.last_error
    assert not editor.generate_button.disabled  # ready for the next try


# ---------------------------------------------------------------------- generate
def test_generate_runs_the_sampler_with_progress_and_shows_the_video(tiny_image, tmp_path):
    config = get_preset("toy").replace(height=32, width=32, num_inference_steps=3, optimised_steps=(1,), iterations=1)
    editor = TrackEditor(
        tiny_image, model="tiny-random", config=config, autosave_path=tmp_path / "a.json", display_size=(256, 256)
    )
    assert editor.num_frames == 4  # the tiny model's own frame count
    drag(editor, (32.0, 32.0), (96.0, 96.0))  # box (8, 8, 24, 24) of the 64 x 64 image
    drag(editor, (64.0, 64.0), (160.0, 128.0))
    steps_seen = []
    editor.progress.observe(lambda change: steps_seen.append(change["new"]), names="value")

    editor.generate_button.click()

    assert editor.last_error is None, editor.last_error
    assert steps_seen == [1, 2, 3] and editor.progress.max == 3
    assert editor.result.frames.shape == (4, 32, 32, 3)
    np.testing.assert_allclose(editor.result.boxes_px[0, 0], [4, 4, 12, 12])  # rescaled to 32 x 32
    assert editor.video.layout.display != "none"
    gif = Image.open(io.BytesIO(editor.video.value))
    assert gif.format == "GIF" and gif.n_frames == 4
    # the tracks are drawn over the video, enlarged x6 so that the drawing stays thin: the box
    # outline (4, 4, 12, 12) -> (24, 24, 72, 72) has the track's colour
    first = np.asarray(gif.convert("RGB"), dtype=int)
    assert first.shape == (192, 192, 3)
    assert np.abs(first[24, 36] - track_colour(0)).max() < 40
    assert "video: 4 frames of 32 x 32" in editor.message.value
