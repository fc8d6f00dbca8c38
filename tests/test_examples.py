"""The course's examples: photos with the reference's trajectories for the real SVD, toy scenes for the toy."""

import pytest


def test_examples_suit_their_models_and_their_tracks_fit_their_images():
    """The photos go to the real SVD with the reference's own trajectories, the toy scene to the toy;
    every example's tracks start inside its image (the reference files are drawn on 1024 x 576)."""
    from sgi2v_lite.examples import EXAMPLES, example, names_for

    assert names_for("toy") == ["shapes"] and set(names_for("svd")) == {"walker", "penguins", "train", "horses"}
    for name in EXAMPLES:
        image, tracks = example(name)
        assert tuple(tracks.image_size) == image.size, name
        for track in tracks.tracks:
            x0, y0, x1, y1 = track.box
            assert 0 <= x0 < x1 <= image.size[0] and 0 <= y0 < y1 <= image.size[1], (name, track.box)
    with pytest.raises(KeyError, match="penguins"):
        example("zebra")
