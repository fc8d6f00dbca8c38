"""Issue 22's redesign changed how the sampler is cut, not what it computes: the same seed gives
the same frames, latents, losses and features as main did just before it (tests/golden/)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import golden  # noqa: E402


def test_the_same_seed_gives_what_it_gave_before_the_redesign(toy_pipe, tiny_pipe):
    before = dict(np.load(golden.SAVED))
    now = golden.outputs(toy_pipe, tiny_pipe)
    assert now.keys() == before.keys()
    for name, saved in before.items():
        assert now[name].shape == saved.shape, name
        if name.endswith("_frames"):
            assert np.array_equal(now[name], saved), f"{name}: {np.mean(now[name] != saved):.1%} of values differ"
        else:
            np.testing.assert_allclose(now[name], saved, rtol=1e-5, atol=1e-6, err_msg=name)
