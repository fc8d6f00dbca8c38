"""Draw tracks on an image in the notebook, then generate the video: the course's drawing widget.

    editor = TrackEditor("data/examples/shapes.png", model="toy")   # a widget: show it as a cell's last line
    editor                      # ... draw with the mouse ...
    editor.tracks               # a `Tracks`, in pixels of the image, ready for `generate`

What the mouse does (on the image, shown scaled to fit; everything is kept in image pixels):

    drag on empty space          draws a box (a new track, static until it gets a path)
    drag from inside a box       draws that box's path freehand; the dots are the box centre in each
                                 of the F frames, after `tracks.resample_path` (what the sampler uses)
    click a box                  selects it (Anchor, Delete act on the selected track)
    "move" mode, drag a box      moves the box and its path

The buttons add camera motion (zoom in/out: boxes moving apart/together; pan: boxes moving in
parallel), undo, save and load the JSON tracks format, import the reference implementation's
`traj.npy`, and Generate, which runs the guided sampler with a progress bar and shows the video
with the tracks drawn over it. Every change is written to `autosave_path`, and a new editor on the
same image picks the file up again, so a kernel restart loses nothing. Errors are shown in the
widget as one line. If the canvas cannot render (a front end without the ipycanvas extension),
"Numeric entry" adds boxes and paths typed as numbers.

Two layers, so the logic can be tested without a browser:
    EditorState   plain Python: the tracks, the selection, the drag in progress, the undo stack
    TrackEditor   the ipywidgets/ipycanvas front: turns canvas pixels into image pixels, calls
                  EditorState, draws, autosaves, runs the sampler
"""

from __future__ import annotations

import copy
import functools
import html
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as widgets
import numpy as np
from ipycanvas import MultiCanvas, hold_canvas

from .config import SGI2VConfig
from .errors import InputError
from .models import PROFILES, default_config, profile_name
from .tracks import Track, Tracks, load_reference_traj, load_tracks, parse_tracks, resample_path
from .viz import track_colour

MODES = ("draw", "move")
CAMERA_MOTIONS = ("zoom in", "zoom out", "pan left", "pan right", "pan up", "pan down")
CLICK_TOLERANCE_PX = 3  # screen pixels: a press and release closer than this is a click, not a drag
UNDO_LIMIT = 200


def _round(value: float) -> float:
    return round(float(value), 2)


def _centre(box) -> tuple[float, float]:
    return (_round((box[0] + box[2]) / 2), _round((box[1] + box[3]) / 2))


def _per_frame(points, num_frames: int) -> list[tuple[float, float]]:
    """A drawn path as the box centre in each of the F frames (rounded to 0.01 pixel)."""
    return [(_round(x), _round(y)) for x, y in resample_path(points, num_frames)]


def camera_motion(kind: str, image_size: tuple[int, int], num_frames: int, amount: float = 0.2) -> list[Track]:
    """Tracks that ask for a camera motion: four boxes around the image centre.

    "zoom in": the boxes move apart (the scene grows), "zoom out": they move together;
    "pan right": the camera turns right, so the scene (and every box) moves left by `amount` of the
    image width, and likewise for left, up and down."""
    if kind not in CAMERA_MOTIONS:
        raise InputError(f"unknown camera motion {kind!r}; choose one of: {', '.join(CAMERA_MOTIONS)}")
    width, height = image_size
    half = min(width, height) / 12  # half the side of each box
    centre = np.array([width / 2, height / 2])
    starts = centre + np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * [width / 4, height / 4]  # (4, 2)
    if kind == "zoom in":
        ends = centre + (starts - centre) * (1 + 2 * amount)
    elif kind == "zoom out":
        ends = centre + (starts - centre) * (1 - 2 * amount)
    else:
        scene_moves = {"pan left": (1, 0), "pan right": (-1, 0), "pan up": (0, 1), "pan down": (0, -1)}[kind]
        ends = starts + np.array(scene_moves) * [width * amount, height * amount]
    return [
        Track(
            box=(_round(x - half), _round(y - half), _round(x + half), _round(y + half)),
            path=_per_frame([(x, y), end], num_frames),
        )
        for (x, y), end in zip(starts, ends)
    ]


@dataclass
class Drag:
    """A mouse drag in progress, in image pixels.

    kind: "box" (drawing a new box), "path" (drawing track `index`'s path), "move" (moving it)."""

    kind: str
    start: tuple[float, float]
    points: list[tuple[float, float]] = field(default_factory=list)
    index: int | None = None

    @property
    def offset(self) -> tuple[float, float]:
        last = self.points[-1] if self.points else self.start
        return (last[0] - self.start[0], last[1] - self.start[1])

    def moved_at_least(self, distance: float) -> bool:
        return any(np.hypot(x - self.start[0], y - self.start[1]) >= distance for x, y in self.points)


class EditorState:
    """Everything the widget edits, as plain Python (no widgets): tracks, selection, drag, undo.

    Coordinates are image pixels. `press`, `drag_to` and `release` are the mouse; the other methods
    are the buttons. `revision` goes up on every change of the tracks (the widget autosaves then)."""

    def __init__(self, image_size: tuple[int, int], num_frames: int, click_tolerance: float = 1.0):
        if num_frames < 2:
            raise InputError(f"number of frames must be at least 2, got {num_frames}")
        self.image_size = (int(image_size[0]), int(image_size[1]))  # (W, H)
        self.num_frames = int(num_frames)
        self.click_tolerance = click_tolerance  # image pixels
        self.tracks: list[Track] = []
        self.selected: int | None = None
        self.mode = "draw"
        self.drag: Drag | None = None
        self.undo_stack: list[tuple[list[Track], int | None]] = []
        self.revision = 0

    # ------------------------------------------------------------------ bookkeeping
    def _remember(self) -> None:
        """Call before every change of the tracks: one undo step, one revision."""
        self.undo_stack.append((copy.deepcopy(self.tracks), self.selected))
        del self.undo_stack[:-UNDO_LIMIT]
        self.revision += 1

    def undo(self) -> bool:
        if not self.undo_stack:
            return False
        self.tracks, self.selected = self.undo_stack.pop()
        self.drag = None
        self.revision += 1
        return True

    def track_at(self, x: float, y: float) -> int | None:
        """The track whose box holds (x, y); the last drawn wins where boxes overlap."""
        for index in reversed(range(len(self.tracks))):
            x0, y0, x1, y1 = self.tracks[index].box
            if x0 <= x <= x1 and y0 <= y <= y1:
                return index
        return None

    def to_tracks(self) -> Tracks:
        return Tracks(image_size=self.image_size, tracks=copy.deepcopy(self.tracks))

    # ------------------------------------------------------------------------ mouse
    def press(self, x: float, y: float) -> None:
        if self.drag is not None:  # a release we never saw (e.g. outside the canvas)
            self.release(*(self.drag.points[-1] if self.drag.points else self.drag.start))
        index = self.track_at(x, y)
        self.selected = index
        if index is None:
            self.drag = Drag("box", (x, y), [(x, y)]) if self.mode == "draw" else None
        else:
            self.drag = Drag("path" if self.mode == "draw" else "move", (x, y), [(x, y)], index)

    def drag_to(self, x: float, y: float) -> None:
        if self.drag is None:
            return
        last = self.drag.points[-1]
        if np.hypot(x - last[0], y - last[1]) >= self.click_tolerance / 2:  # thin out the freehand stroke
            self.drag.points.append((x, y))

    def release(self, x: float, y: float) -> None:
        drag, self.drag = self.drag, None
        if drag is None:
            return
        drag.points.append((x, y))
        if not drag.moved_at_least(self.click_tolerance):
            return  # a click: it only selected (or deselected)
        if drag.kind == "box":
            self.add_track(self._clipped_box(drag.start, (x, y)))
        elif drag.kind == "path":
            self.set_path_from_stroke(drag.index, drag.points)
        elif drag.kind == "move":
            self.move_track(drag.index, *drag.offset)

    def _clipped_box(self, corner_a, corner_b) -> tuple[float, float, float, float]:
        width, height = self.image_size
        xs = sorted(min(max(v, 0.0), width) for v in (corner_a[0], corner_b[0]))
        ys = sorted(min(max(v, 0.0), height) for v in (corner_a[1], corner_b[1]))
        return (_round(xs[0]), _round(ys[0]), _round(xs[1]), _round(ys[1]))

    # ------------------------------------------------------------------------ edits
    def add_track(self, box, path=None) -> None:
        """A new track (selected); without a path it is an anchor at the box centre."""
        box = tuple(_round(v) for v in box)
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            return  # a box squeezed to nothing against the image border
        self._remember()
        path = [(_round(px), _round(py)) for px, py in path] if path else [_centre(box)]
        self.tracks.append(Track(box=box, path=path))
        self.selected = len(self.tracks) - 1

    def set_path_from_stroke(self, index: int, stroke) -> None:
        """Track `index`'s path from a mouse stroke: the box centre follows the stroke's offsets
        from its first point, resampled to one point per frame."""
        self._remember()
        track = self.tracks[index]
        start = np.asarray(stroke[0], dtype=np.float64)
        centres = np.asarray(_centre(track.box)) + (np.asarray(stroke, dtype=np.float64) - start)
        track.path = _per_frame(centres, self.num_frames)
        self.selected = index

    def move_track(self, index: int, dx: float, dy: float) -> None:
        self._remember()
        track = self.tracks[index]
        x0, y0, x1, y1 = track.box
        track.box = (_round(x0 + dx), _round(y0 + dy), _round(x1 + dx), _round(y1 + dy))
        track.path = [(_round(x + dx), _round(y + dy)) for x, y in track.path]
        self.selected = index

    def anchor_selected(self) -> None:
        """Make the selected track static: an anchor that holds its part of the scene still."""
        if self.selected is None:
            raise InputError("select a box first (click it), then mark it static")
        self._remember()
        track = self.tracks[self.selected]
        track.path = [_centre(track.box)]

    def delete_selected(self) -> None:
        if self.selected is None:
            raise InputError("select a box first (click it), then delete it")
        self._remember()
        del self.tracks[self.selected]
        self.selected = None

    def clear(self) -> None:
        if self.tracks:
            self._remember()
            self.tracks, self.selected = [], None

    def add_camera_motion(self, kind: str, amount: float = 0.2) -> None:
        new_tracks = camera_motion(kind, self.image_size, self.num_frames, amount)
        self._remember()
        self.tracks.extend(new_tracks)
        self.selected = None

    def replace_all(self, tracks: Tracks) -> None:
        """Put loaded tracks in place of the drawn ones (rescaled to this image if needed)."""
        if tuple(tracks.image_size) != self.image_size:
            tracks = tracks.rescaled(self.image_size)
        self._remember()
        self.tracks = [
            Track(box=tuple(_round(v) for v in t.box), path=[(_round(x), _round(y)) for x, y in t.path])
            for t in tracks.tracks
        ]
        self.selected = None

    # ------------------------------------------------------------------- for drawing
    def preview_dots(self, index: int) -> np.ndarray:
        """The centre of track `index`'s box in each frame, (F, 2): what the sampler will use."""
        return resample_path(self.tracks_for_display()[index].path, self.num_frames)

    def tracks_for_display(self) -> list[Track]:
        """The tracks as they look right now: a box being moved is shown at the mouse."""
        if self.drag is None or self.drag.kind != "move":
            return self.tracks
        shown = copy.deepcopy(self.tracks)
        dx, dy = self.drag.offset
        track = shown[self.drag.index]
        track.box = (track.box[0] + dx, track.box[1] + dy, track.box[2] + dx, track.box[3] + dy)
        track.path = [(x + dx, y + dy) for x, y in track.path]
        return shown


# ------------------------------------------------------------------------ the widget
def _reports_errors(handler):
    """Run a button or mouse handler; any error becomes one line in the widget, never a traceback."""

    @functools.wraps(handler)
    def run(self, *args, **kwargs):
        try:
            return handler(self, *args, **kwargs)
        except Exception as err:  # the widget is the user's console: show it there
            self.show_error(err)

    return run


def error_line(err: BaseException) -> str:
    """One line for the user: an `InputError` says it all; anything else is named by its type."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    return text if isinstance(err, InputError) else f"{type(err).__name__}: {text}".rstrip(": ")


def _rgb(colour, alpha: float = 1.0) -> str:
    return f"rgba({colour[0]}, {colour[1]}, {colour[2]}, {alpha})"


def _parse_numbers(text: str, where: str) -> list[float]:
    try:
        return [float(v) for v in re.split(r"[\s,;]+", text.strip().strip("[]()")) if v]
    except ValueError:
        raise InputError(f"numeric entry: {where}: expected numbers, got {text.strip()!r}") from None


class TrackEditor(widgets.VBox):
    """The drawing widget. Show it (last line of a cell), draw, then read `editor.tracks` or press
    Generate.

    image:          a path, a PIL image or an (H, W, 3) uint8 array; shown scaled to fit `display_size`
    num_frames:     F, the frames of the video (default: `config.num_frames`, else the model's own)
    model:          what Generate loads with `load_pipeline` ("auto", "toy", "svd", a folder, ...), once
    config:         the `SGI2VConfig` for Generate (default: `models.default_config`, the model's and GPU's)
    pipe:           an already loaded pipeline, used instead of loading `model`
    autosave_path:  JSON file written on every change and read back at start if it was drawn on an
                    image of this size; None turns autosave off
    device:         where Generate runs (default: "cuda" if there is one, else "cpu")
    """

    def __init__(
        self,
        image,
        num_frames: int | None = None,
        model: str = "toy",
        config: SGI2VConfig | None = None,
        pipe=None,
        autosave_path: str | Path | None = "tracks_autosave.json",
        display_size: tuple[int, int] = (640, 480),
        device: str | None = None,
    ):
        super().__init__()
        self.image = self._as_pil(image)
        self.model = model  # "auto" is resolved by load_pipeline
        self.config = config or default_config(pipe if hasattr(pipe, "unet") else model, device)
        self.pipe = pipe
        self.device = device
        self.result = None  # the last `GenerationResult`
        self.video_path: Path | None = None  # the last video (GIF, tracks drawn over it)
        self.last_error: str | None = None
        self.autosave_path = Path(autosave_path) if autosave_path is not None else None

        # image pixels -> screen pixels: the whole image fits in display_size
        width, height = self.image.size
        fit = min(display_size[0] / width, display_size[1] / height)
        canvas_size = (max(1, round(width * fit)), max(1, round(height * fit)))
        self.scale = (canvas_size[0] / width, canvas_size[1] / height)  # (x, y) screen px per image px
        frames = (
            num_frames
            or self.config.num_frames
            or PROFILES[profile_name(pipe if pipe is not None else model)].num_frames
        )
        self.state = EditorState((width, height), frames, click_tolerance=CLICK_TOLERANCE_PX / min(self.scale))
        self._saved_revision = 0

        self._build_controls(canvas_size)
        self._restore_autosave()
        self._redraw()

    # ----------------------------------------------------------------- public API
    @property
    def tracks(self) -> Tracks:
        """The drawn tracks, in pixels of the image (a copy)."""
        return self.state.to_tracks()

    @property
    def num_frames(self) -> int:
        return self.state.num_frames

    def to_json(self) -> str:
        return json.dumps(self.tracks.to_dict())

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if not self.state.tracks:
            raise InputError("nothing to save yet: draw a box first")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tracks.save(path)
        return path

    def load(self, path: str | Path) -> None:
        """Replace the tracks with a JSON tracks file, or import a reference `traj.npy` (drawn on
        a 1024 x 576 image, rescaled to this one)."""
        path = Path(path)
        self.set_tracks(load_reference_traj(path) if path.suffix.lower() == ".npy" else load_tracks(path))

    def set_tracks(self, tracks: Tracks) -> None:
        """Replace the drawn tracks with `tracks` (rescaled to this image if drawn on another size);
        Undo brings the drawing back."""
        self.state.replace_all(tracks)
        self._changed()

    # --------------------------------------------------------------- construction
    @staticmethod
    def _as_pil(image):
        from PIL import Image

        from .video import load_image

        if isinstance(image, (str, Path)):
            return load_image(image)
        if isinstance(image, np.ndarray):
            return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
        if isinstance(image, Image.Image):
            return image.convert("RGB")
        raise InputError(f"image: expected a file path, a PIL image or an array, got {type(image).__name__}")

    def _build_controls(self, canvas_size) -> None:
        button = functools.partial(widgets.Button, layout=widgets.Layout(width="auto"))
        self.help = widgets.HTML(
            f"<b>Drag</b> on the image: a box. <b>Drag from inside a box</b>: its path (dots: the box "
            f"centre in each of the {self.num_frames} frames). <b>Click</b> a box: select it."
        )
        self.mode_buttons = widgets.ToggleButtons(options=MODES, tooltips=["draw boxes and paths", "drag boxes"])
        self.anchor_button = button(description="Static (anchor)", tooltip="the selected box stays still")
        self.delete_button = button(description="Delete", icon="trash")
        self.undo_button = button(description="Undo", icon="undo")
        self.clear_button = button(description="Clear all")

        self.canvas = MultiCanvas(2, width=canvas_size[0], height=canvas_size[1])  # 0: image, 1: tracks
        self.canvas.layout = widgets.Layout(width=f"{canvas_size[0]}px", max_width="100%", height="auto")
        self.canvas.add_class("sgi2v-canvas")
        self.track_list = widgets.HTML()

        self.camera_choice = widgets.Dropdown(options=CAMERA_MOTIONS, layout=widgets.Layout(width="120px"))
        self.camera_button = button(description="Add camera motion")
        self.file_path = widgets.Text(value="tracks.json", description="File", layout=widgets.Layout(width="320px"))
        self.save_button = button(description="Save", icon="save")
        self.load_button = button(description="Load .json / traj.npy", icon="folder-open")

        self.box_entry = widgets.Text(placeholder="x0, y0, x1, y1", description="Box")
        self.path_entry = widgets.Text(placeholder="x, y; x, y; ...  (empty: static)", description="Path")
        self.add_button = button(description="Add track")
        numeric = widgets.VBox(
            [
                widgets.HTML("Boxes and paths in image pixels, if the canvas does not show."),
                self.box_entry,
                self.path_entry,
                self.add_button,
            ]
        )
        self.numeric_entry = widgets.Accordion(children=[numeric], selected_index=None)
        self.numeric_entry.set_title(0, "Numeric entry")  # (ipywidgets 7, as on Colab, has no `titles`)

        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="", layout=widgets.Layout(width="240px"))
        self.message = widgets.HTML()
        self.video = widgets.Image(format="gif", layout=widgets.Layout(width=f"{canvas_size[0]}px", display="none"))

        self.canvas.on_mouse_down(self._on_mouse_down)
        self.canvas.on_mouse_move(self._on_mouse_move)
        self.canvas.on_mouse_up(self._on_mouse_up)
        self.canvas.on_mouse_out(self._on_mouse_up)  # leaving the canvas ends a drag
        self.canvas.on_key_down(self._on_key_down)
        self.canvas.on_client_ready(self._redraw)  # a new view starts blank: paint it
        self.mode_buttons.observe(self._on_mode, names="value")
        for widget, handler in [
            (self.anchor_button, self._on_anchor),
            (self.delete_button, self._on_delete),
            (self.undo_button, self._on_undo),
            (self.clear_button, self._on_clear),
            (self.camera_button, self._on_camera),
            (self.save_button, self._on_save),
            (self.load_button, self._on_load),
            (self.add_button, self._on_add),
            (self.generate_button, self._on_generate),
        ]:
            widget.on_click(handler)

        self.children = [
            self.help,
            widgets.HBox(
                [self.mode_buttons, self.anchor_button, self.delete_button, self.undo_button, self.clear_button]
            ),
            self.canvas,
            self.track_list,
            widgets.HBox([self.camera_choice, self.camera_button, self.file_path, self.save_button, self.load_button]),
            self.numeric_entry,
            widgets.HBox([self.generate_button, self.progress]),
            self.message,
            self.video,
        ]

    # ------------------------------------------------------------- mouse and keys
    def _to_image(self, x: float, y: float) -> tuple[float, float]:
        return (float(x) / self.scale[0], float(y) / self.scale[1])

    @_reports_errors
    def _on_mouse_down(self, x, y):
        self.state.press(*self._to_image(x, y))
        self._changed()  # a drag whose release was lost ends here, and is saved

    @_reports_errors
    def _on_mouse_move(self, x, y):
        if self.state.drag is not None:
            self.state.drag_to(*self._to_image(x, y))
            self._draw_tracks()

    @_reports_errors
    def _on_mouse_up(self, x, y):
        if self.state.drag is not None:
            self.state.release(*self._to_image(x, y))
            self._changed()

    @_reports_errors
    def _on_key_down(self, key, shift_key, ctrl_key, meta_key):
        if key in ("Delete", "Backspace"):
            self._on_delete()
        elif key.lower() == "z" and (ctrl_key or meta_key):
            self._on_undo()

    def _on_mode(self, change):
        self.state.mode = change["new"]

    # -------------------------------------------------------------------- buttons
    @_reports_errors
    def _on_anchor(self, _=None):
        self.state.anchor_selected()
        self._changed()

    @_reports_errors
    def _on_delete(self, _=None):
        self.state.delete_selected()
        self._changed()

    @_reports_errors
    def _on_undo(self, _=None):
        if not self.state.undo():
            raise InputError("nothing to undo")
        self._changed()

    @_reports_errors
    def _on_clear(self, _=None):
        self.state.clear()
        self._changed()

    @_reports_errors
    def _on_camera(self, _=None):
        self.state.add_camera_motion(self.camera_choice.value)
        self._changed(f"added camera motion: {self.camera_choice.value}")

    @_reports_errors
    def _on_save(self, _=None):
        path = self.save(self.file_path.value.strip())
        self.show_message(f"saved {len(self.state.tracks)} track(s) to {path}")

    @_reports_errors
    def _on_load(self, _=None):
        path = self.file_path.value.strip()
        self.load(path)
        self.show_message(f"loaded {len(self.state.tracks)} track(s) from {path}")

    @_reports_errors
    def _on_add(self, _=None):
        box = _parse_numbers(self.box_entry.value, "box")
        values = _parse_numbers(self.path_entry.value, "path")
        if len(values) % 2:
            raise InputError(f"numeric entry: path: expected x, y pairs, got {len(values)} numbers")
        path = [values[i : i + 2] for i in range(0, len(values), 2)]
        if not path:  # static: an anchor at the box centre
            path = [[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]] if len(box) == 4 else [[0, 0]]
        try:
            track = parse_tracks({"image_size": list(self.state.image_size), "tracks": [{"box": box, "path": path}]})
        except InputError as err:
            raise InputError("numeric entry: " + str(err).removeprefix("track 0: ")) from None
        track = track.tracks[0]
        self.state.add_track(track.box, track.path if self.path_entry.value.strip() else None)
        self._changed()

    @_reports_errors
    def _on_generate(self, _=None):
        self.generate()

    # --------------------------------------------------------------------- generate
    def generate(self):
        """Run the guided sampler on the drawn tracks; show the video with the tracks over it.
        Returns the `GenerationResult` (also kept in `self.result`)."""
        from .models import load_pipeline
        from .sampler import generate as run_sampler
        from .video import write_video
        from .viz import draw_tracks

        if not self.state.tracks:
            raise InputError("no tracks yet: drag on the image to draw a box first")
        tracks = parse_tracks(self.tracks.to_dict())  # every check the CLI makes
        config = self.config.replace(num_frames=self.num_frames)
        self.generate_button.disabled = True
        try:
            if self.pipe is None:
                self.show_message(f"loading model {self.model!r} ...")
                self.pipe = load_pipeline(self.model, device=self.device)
            self.progress.max, self.progress.value = config.num_inference_steps, 0
            self.progress.description = "denoising"
            self.show_message("generating ...")
            result = run_sampler(self.pipe, self.image, tracks, config, callback=self._on_step, progress=False)
            overlaid = draw_tracks(result.frames, result.boxes_px)  # small frames enlarged: a thin drawing
            if self.video_path is None:
                self.video_path = Path(tempfile.mkdtemp(prefix="sgi2v-widget-")) / "video.gif"
            write_video(self.video_path, overlaid, fps=result.config.fps)
            self.video.value = self.video_path.read_bytes()
            self.video.layout.display = None
            self.result = result
            frames = result.frames
            self.show_message(
                f"video: {frames.shape[0]} frames of {frames.shape[2]} x {frames.shape[1]} ({self.video_path})"
            )
            return result
        finally:
            self.generate_button.disabled = False

    def _on_step(self, info: dict) -> None:
        self.progress.value = info["step"] + 1

    # ----------------------------------------------------------------- messages
    def show_message(self, text: str, escape: bool = True) -> None:
        self.message.value = html.escape(text) if escape else text

    def show_error(self, err: BaseException | str) -> None:
        self.last_error = err if isinstance(err, str) else error_line(err)
        self.message.value = f'<span style="color:#c00000"><b>error:</b> {html.escape(self.last_error)}</span>'

    # ------------------------------------------------------------ change, autosave
    def _changed(self, note: str | None = None) -> None:
        """After every edit: redraw, and autosave if the tracks changed."""
        self._redraw()
        if self.state.revision != self._saved_revision:
            self._saved_revision = self.state.revision
            self._autosave()
            self.last_error = None
            self.show_message(note or (f"autosaved to {self.autosave_path}" if self.autosave_path else ""))

    def _autosave(self) -> None:
        if self.autosave_path is None:
            return
        self.autosave_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.autosave_path.with_name(self.autosave_path.name + ".partial")
        self.tracks.save(partial)  # write, then rename: a crash never leaves half a file
        os.replace(partial, self.autosave_path)

    @_reports_errors
    def _restore_autosave(self) -> None:
        if self.autosave_path is None or not self.autosave_path.is_file():
            return
        data = json.loads(self.autosave_path.read_text())
        if not data.get("tracks"):
            return
        tracks = parse_tracks(data)
        if tuple(tracks.image_size) != self.state.image_size:
            self.show_message(
                f"{self.autosave_path} holds tracks for a {tracks.image_size[0]} x {tracks.image_size[1]} image, "
                "not this one: not restored (it is overwritten on the first change)"
            )
            return
        self.state.replace_all(tracks)
        self.state.undo_stack.clear()
        self._saved_revision = self.state.revision
        self.show_message(f"restored {len(tracks)} track(s) from {self.autosave_path}")

    # -------------------------------------------------------------------- drawing
    def _redraw(self) -> None:
        self._draw_image()
        self._draw_tracks()
        self._list_tracks()

    def _draw_image(self) -> None:
        from PIL import Image

        shown = self.image.resize((self.canvas.width, self.canvas.height), Image.BILINEAR)
        self.canvas[0].put_image_data(np.asarray(shown), 0, 0)

    def _draw_tracks(self) -> None:
        """Layer 1: every box, its path and its per-frame dots, plus the drag in progress."""
        layer, (sx, sy) = self.canvas[1], self.scale
        state = self.state
        with hold_canvas():
            layer.clear()
            layer.font = "12px sans-serif"
            for index, track in enumerate(state.tracks_for_display()):
                colour, selected = track_colour(index), index == state.selected
                x0, y0, x1, y1 = track.box
                layer.line_width = 3 if selected else 2
                layer.set_line_dash([])
                if selected:
                    layer.fill_style = _rgb(colour, 0.2)
                    layer.fill_rect(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
                layer.stroke_style = layer.fill_style = _rgb(colour)
                layer.stroke_rect(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
                layer.fill_text(str(index), x0 * sx + 3, y0 * sy + 13)
                dots = state.preview_dots(index) * (sx, sy)  # (F, 2) screen pixels
                if track.is_static:
                    cx, cy = dots[0]
                    layer.stroke_line(cx - 6, cy, cx + 6, cy)
                    layer.stroke_line(cx, cy - 6, cx, cy + 6)
                    layer.fill_text("static", x0 * sx + 3, y1 * sy - 4)
                    continue
                layer.line_width = 1.5
                layer.stroke_lines(dots.tolist())
                self._draw_dots(layer, dots)
                shift = dots[-1] - dots[0]  # the box in the last frame, dashed
                layer.set_line_dash([4, 4])
                layer.stroke_rect(x0 * sx + shift[0], y0 * sy + shift[1], (x1 - x0) * sx, (y1 - y0) * sy)
            self._draw_drag(layer)

    def _draw_drag(self, layer) -> None:
        drag, (sx, sy) = self.state.drag, self.scale
        if drag is None or drag.kind == "move":
            return
        layer.set_line_dash([5, 3])
        layer.line_width = 2
        if drag.kind == "box" and len(drag.points) > 1:
            layer.stroke_style = _rgb(track_colour(len(self.state.tracks)))
            (ax, ay), (bx, by) = drag.start, drag.points[-1]
            layer.stroke_rect(min(ax, bx) * sx, min(ay, by) * sy, abs(bx - ax) * sx, abs(by - ay) * sy)
        elif len(drag.points) > 1:  # the stroke as drawn, moved onto the box centre, and its dots
            colour = track_colour(drag.index)
            centre = np.asarray(_centre(self.state.tracks[drag.index].box))
            stroke = centre + (np.asarray(drag.points) - drag.points[0])
            layer.stroke_style = layer.fill_style = _rgb(colour)
            layer.stroke_lines((stroke * (sx, sy)).tolist())
            dots = resample_path(stroke, self.num_frames) * (sx, sy)
            self._draw_dots(layer, dots)

    @staticmethod
    def _draw_dots(layer, dots) -> None:
        """One dot per frame, (F, 2) screen pixels, ringed in white to show on any background."""
        layer.set_line_dash([])
        layer.fill_circles(dots[:, 0], dots[:, 1], 3.5)
        layer.line_width, stroke_style = 1, layer.stroke_style
        layer.stroke_style = "white"
        layer.stroke_circles(dots[:, 0], dots[:, 1], 4)
        layer.stroke_style = stroke_style

    def _list_tracks(self) -> None:
        rows = []
        for index, track in enumerate(self.state.tracks):
            box = ", ".join(f"{v:g}" for v in track.box)
            motion = "static (anchor)" if track.is_static else f"path of {len(track.path)} points"
            mark = " &larr; selected" if index == self.state.selected else ""
            rows.append(
                f'<span style="color:{_rgb(track_colour(index))}">&#9632;</span> '
                f"track {index}: box [{box}], {motion}{mark}"
            )
        width, height = self.state.image_size
        header = f"image {width} x {height} px, {self.num_frames} frames, {len(rows)} track(s)"
        self.track_list.value = "<br>".join([header, *rows])
