"""Shared fixtures: the tiny random SVD pipeline (diffusers' get_dummy_components pattern), small
settings, and the reference trajectory files. Nothing here downloads anything."""

import functools
import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE_TRAJ = sorted((FIXTURES / "reference_traj").glob("*.npy"))
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_pipe():
    from sgi2v_lite.models import load_pipeline

    return load_pipeline("tiny-random")


@pytest.fixture(scope="session")
def toy_pipe():
    """The shipped toy model (data/toy-svd), loaded once for the tests that run it."""
    from sgi2v_lite.models import load_pipeline

    return load_pipeline("toy")


@pytest.fixture
def tiny_config():
    """32 x 32 frames, few steps and iterations: a whole guided run of the tiny pipeline in well
    under a second (the tracks below are drawn on a 64 x 64 image and rescaled)."""
    from sgi2v_lite.config import get_preset

    return get_preset("toy").replace(height=32, width=32, num_inference_steps=4, optimised_steps=(1, 2), iterations=2)


@pytest.fixture
def tiny_tracks():
    from sgi2v_lite.tracks import parse_tracks

    return parse_tracks(
        {
            "image_size": [64, 64],
            "tracks": [
                {"box": [8, 8, 24, 24], "path": [[16, 16], [40, 30]]},
                {"box": [40, 40, 56, 56], "path": [[48, 48]]},
            ],
        }
    )


@pytest.fixture
def tiny_image():
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:64, 0:64]
    rgb = np.stack([x * 4, y * 4, 255 - x * 2], -1).astype(np.uint8)
    rgb[8:24, 8:24] = (230, 30, 30)
    return Image.fromarray(rgb)


def unet_inputs(unet, batch=1, frames=3, seed=0):
    """Random inputs for an SVD UNet: latent (B, F, 8, h, w), timestep, CLIP embedding, time ids."""
    generator = torch.Generator().manual_seed(seed)
    size = unet.config.sample_size
    sample = torch.randn(batch, frames, unet.config.in_channels, size, size, generator=generator)
    embedding = torch.randn(batch, 1, unet.config.cross_attention_dim, generator=generator)
    time_ids = torch.tensor([[6.0, 127.0, 0.02]]).repeat(batch, 1)
    return sample, torch.tensor(5.0), dict(encoder_hidden_states=embedding, added_time_ids=time_ids)


# Appended to a notebook by `executed_notebook`: prints the notebook's plain values (numbers,
# strings, lists and dicts of them, small numpy arrays) as JSON, so that the course-claims tests
# assert the very numbers the notebook computed and printed.
_DUMP_VALUES = """
import json as _json
import numpy as _np
def _plain(value):
    if isinstance(value, _np.ndarray) and value.size <= 100_000:
        return value.tolist()
    if isinstance(value, (_np.floating, _np.integer, _np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
_values = {}
for _name, _value in list(globals().items()):
    if not _name.startswith("_"):
        try:
            _values[_name] = _json.loads(_json.dumps(_plain(_value)))
        except (TypeError, ValueError, OverflowError):
            pass
print("NOTEBOOK_VALUES " + _json.dumps(_values))
"""


@functools.cache
def executed_notebook(name: str) -> tuple[list, dict, list]:
    """Run notebooks/`name` top to bottom on the toy model (once per test session) and return its
    error outputs, its plain values (`_DUMP_VALUES`) and all its cells' outputs. With
    SGI2V_EXECUTED_DIR set, the executed notebook is also written there."""
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / name
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(_DUMP_VALUES))
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    if os.environ.get("SGI2V_EXECUTED_DIR"):  # keep the executed notebook, figures and all, to look at
        folder = Path(os.environ["SGI2V_EXECUTED_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, folder / name)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    dumped = [o for o in notebook.cells[-1].outputs if o.output_type == "stream" and "NOTEBOOK_VALUES " in o.text]
    values = json.loads(dumped[0].text.split("NOTEBOOK_VALUES ", 1)[1]) if dumped else {}
    return errors, values, outputs
