"""The course's example inputs: an image and its tracks, by name, for the model at hand.

The toy model knows shapes on smooth backgrounds, so on it the examples are toy scenes
(`data/examples/`); the real SVD gets photos from SG-I2V's reference implementation with their own
trajectories (`data/reference/`, MIT licence). `example(name)` returns the image and its tracks,
rescaled to the image; `names_for(model)` lists the examples that suit a model.

    image, tracks = example("penguins")          # a photo and the reference's trajectories
    names_for("toy")  ->  ["shapes"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .tracks import Tracks, load_reference_traj, load_tracks

DATA = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Example:
    image: Path
    tracks: Path  # a tracks JSON, or the reference implementation's traj.npy
    models: tuple[str, ...]  # model profiles it suits ("toy", "svd")
    about: str


SVD = ("svd", "svd-xt")
EXAMPLES = {
    "shapes": Example(
        DATA / "examples/shapes.png", DATA / "examples/shapes.json", ("toy", "tiny-random"), "circle right, square held"
    ),
    "walker": Example(DATA / "reference/9.jpg", DATA / "reference/9.npy", SVD, "the walking man to the left"),
    "penguins": Example(DATA / "reference/38.jpg", DATA / "reference/38.npy", SVD, "two penguins cross, two anchors"),
    "train": Example(DATA / "reference/41.jpg", DATA / "reference/41.npy", SVD, "the steam train forward"),
    "horses": Example(DATA / "reference/49.jpg", DATA / "reference/49.npy", SVD, "two horses, opposite ways"),
}


def names_for(profile: str) -> list[str]:
    """The examples that suit a model profile (`models.PROFILES`' names; `models.profile_name` gives a
    loaded pipeline's)."""
    return [name for name, e in EXAMPLES.items() if profile in e.models]


def example(name: str):
    """(PIL image, Tracks in that image's pixels) of the example `name`."""
    from .video import load_image

    if name not in EXAMPLES:
        raise KeyError(f"no example {name!r}; the examples are {', '.join(EXAMPLES)}")
    chosen = EXAMPLES[name]
    image = load_image(chosen.image)
    if chosen.tracks.suffix == ".npy":
        tracks: Tracks = load_reference_traj(chosen.tracks)
    else:
        tracks = load_tracks(chosen.tracks)
    return image, tracks.rescaled(image.size)
