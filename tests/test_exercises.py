"""The notebooks' exercises: every solution file passes its check, a wrong answer fails it with a
message, and the notebook's stub (returning None) is reported as not attempted."""

import importlib.util

import numpy as np
import pytest
import torch
from conftest import ROOT

from sgi2v_lite.exercises import EXERCISES, check

SOLUTIONS = ROOT / "notebooks" / "solutions"


def solution(name):
    spec = importlib.util.spec_from_file_location(name, SOLUTIONS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    functions = [
        v
        for k, v in vars(module).items()
        if callable(v) and not k.startswith("_") and getattr(v, "__module__", None) == name
    ]
    assert len(functions) == 1, f"{name}.py should define one function"
    return functions[0]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_solution_passes(name, capsys):
    assert check(name, solution(name)) is True
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_stub_is_not_attempted(name, capsys):
    assert check(name, lambda *args: None) is False
    assert f"%load solutions/{name}.py" in capsys.readouterr().out


WRONG = {
    "latent_shape": lambda h, w, f: (f, 4, h // 4, w // 4),
    "x0_from_v": lambda z, v, sigma: z - sigma * v,
    "aligned_attention": lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1) @ v,
    "gaussian_weights": lambda h, w: torch.ones(h, w),
    "butterworth": lambda h, w, c, n: torch.ones(h, w),
    "one_box_loss": lambda f, b0, bj, j, w: (
        (f[j, :, bj[1] : bj[3], bj[0] : bj[2]] - f[0, :, b0[1] : b0[3], b0[0] : b0[2]]).pow(2).mean()
    ),
    "frequency_mix": lambda opt, orig, mask: (
        torch.fft.ifft2(mask * torch.fft.fft2(opt) + (1 - mask) * torch.fft.fft2(orig)).real
    ),
    "objmc": lambda tracked, target: np.linalg.norm(np.asarray(tracked) - np.asarray(target), axis=-1).mean(),
}


@pytest.mark.parametrize("name", list(EXERCISES))
def test_a_wrong_answer_fails_with_a_message(name):
    with pytest.raises(AssertionError, match=r"\w"):
        check(name, WRONG[name])


def test_every_exercise_is_in_its_notebook():
    import json

    for name, (_, number) in EXERCISES.items():
        (notebook,) = (ROOT / "notebooks").glob(f"{number}_*.ipynb")
        sources = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]]
        assert any(f'check("{name}"' in s for s in sources), f"{notebook.name} has no check of {name}"


def test_the_open_experiments_verdict_needs_both_motion_and_integrity(capsys):
    from sgi2v_lite.exercises import experiment_verdict

    unguided = {"objmc": 10.0, "shape_iou": 0.8}
    assert experiment_verdict({"objmc": 7.0, "shape_iou": 0.75}, unguided) is True
    assert experiment_verdict({"objmc": 7.0, "shape_iou": 0.6}, unguided) is False  # moved, but broken
    assert experiment_verdict({"objmc": 11.0, "shape_iou": 0.8}, unguided) is False  # whole, not nearer
    assert "broken" in capsys.readouterr().out
