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
