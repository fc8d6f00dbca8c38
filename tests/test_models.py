import pytest
import torch

from sgi2v_lite.attention import default_feature_layers
from sgi2v_lite.config import get_preset
from sgi2v_lite.errors import InputError
from sgi2v_lite.models import load_pipeline


def test_a_saved_folder_loads_back_through_from_pretrained(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "saved")
    loaded = load_pipeline(str(tmp_path / "saved"))
    for name, tensor in tiny_pipe.unet.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], tensor)
    assert type(loaded.scheduler) is type(tiny_pipe.scheduler)
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert loaded.scheduler.config.use_karras_sigmas


def test_hub_models_fail_clearly_without_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="could not load model 'stabilityai/stable-video-diffusion-img2vid'"):
        load_pipeline("svd")


def test_unknown_model():
    with pytest.raises(InputError, match="unknown model 'svd3'"):
        load_pipeline("svd3")


def test_the_shipped_toy_model_is_a_real_svd_pipeline_loaded_with_from_pretrained():
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPVisionModelWithProjection

    from sgi2v_lite.models import TOY_MODEL_DIR

    files = [f for f in TOY_MODEL_DIR.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 30 * 2**20
    assert (TOY_MODEL_DIR / "README.md").is_file() and "## Evaluation" in (TOY_MODEL_DIR / "README.md").read_text()
    pipe = load_pipeline("toy")
    assert isinstance(pipe, StableVideoDiffusionPipeline)
    assert isinstance(pipe.unet, UNetSpatioTemporalConditionModel) and isinstance(
        pipe.vae, AutoencoderKLTemporalDecoder
    )
    assert isinstance(pipe.image_encoder, CLIPVisionModelWithProjection) and isinstance(
        pipe.scheduler, EulerDiscreteScheduler
    )
    assert pipe.unet.config.sample_size >= 16 and pipe.unet.config.num_frames >= 8
    assert pipe.scheduler.config.prediction_type == "v_prediction" and pipe.unet.dtype == torch.float32
    assert default_feature_layers(pipe.unet) == ("up_blocks.1.attentions.1.transformer_blocks.0.attn1",)


def test_missing_toy_weights_are_a_clear_error(monkeypatch, tmp_path):
    import sgi2v_lite.models as models

    monkeypatch.setattr(models, "TOY_MODEL_DIR", tmp_path)
    with pytest.raises(InputError, match="make toy-model"):
        load_pipeline("toy")


def test_auto_is_toy_on_a_cpu_and_can_be_overridden(monkeypatch, tiny_pipe):
    from sgi2v_lite.models import auto_model_name, default_config

    monkeypatch.delenv("SGI2V_MODEL", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_model_name() == "toy"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_model_name() == "svd"
    monkeypatch.setenv("SGI2V_MODEL", "tiny-random")
    assert auto_model_name() == "tiny-random"
    assert default_config(tiny_pipe) == get_preset("toy")


def test_load_model_gives_the_pipeline_and_its_resolved_preset(monkeypatch):
    from sgi2v_lite import load_model

    monkeypatch.setenv("SGI2V_MODEL", "tiny-random")
    pipe, config = load_model("auto")
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    assert (config.height, config.width, config.num_frames) == (size, size, pipe.unet.config.num_frames)
    assert config.feature_layers == default_feature_layers(pipe.unet) and config.num_inference_steps == 25


def _http_response(status: int):
    """A hub HTTP response for the hub's own exception types (httpx2 with huggingface_hub >= 2.4, httpx before)."""
    import importlib

    try:
        httpx = importlib.import_module("httpx2")
    except ImportError:
        httpx = importlib.import_module("httpx")
    return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/models/x"))


def _wrapped(inner):
    """The hub's exception as diffusers re-raises it: an OSError raised from it."""
    try:
        raise inner
    except Exception as cause:
        try:
            raise OSError("Cannot load model stabilityai/stable-video-diffusion-img2vid: not cached") from cause
        except OSError as outer:
            return outer


def _hub_failures():
    import errno

    from huggingface_hub import errors as hub

    gated = hub.GatedRepoError("403 Client Error: Cannot access gated repo", response=_http_response(403))
    page = "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid"
    return {  # exception -> what the message must say
        "gated": (_wrapped(gated), f"gated. Accept the licence at {page}"),
        "gated, bare": (hub.GatedRepoError("401 Client Error", response=_http_response(401)), "notebook_login()"),
        "offline": (_wrapped(hub.OfflineModeIsEnabled("offline mode")), "cannot be reached and no copy is cached"),
        "no network": (_wrapped(ConnectionError("Name or service not known")), "Connect to the internet"),
        "not cached": (hub.LocalEntryNotFoundError("not in the disk cache"), "no copy is cached"),
        "disk full": (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        "no such repo": (hub.RepositoryNotFoundError("404", response=_http_response(404)), "no such repository"),
    }  # fmt: skip


@pytest.mark.parametrize("kind", list(_hub_failures()))
def test_each_hub_failure_says_what_to_do_in_one_line(monkeypatch, capsys, tmp_path, kind):
    from diffusers import StableVideoDiffusionPipeline

    from sgi2v_lite.cli import main

    error, advice = _hub_failures()[kind]

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(StableVideoDiffusionPipeline, "from_pretrained", refuse)
    with pytest.raises(InputError) as raised:
        load_pipeline("svd")
    message = str(raised.value)
    assert advice in message and "\n" not in message
    assert message.startswith("could not load model 'stabilityai/stable-video-diffusion-img2vid': ")
    # the CLI: that line, exit 2, no traceback
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(image)
    assert main(["generate", "--model", "svd", "--image", str(image), "--out", str(tmp_path / "v.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}" and "Traceback" not in err


def test_every_notebook_says_how_to_get_the_gated_weights_before_loading():
    import json

    from conftest import ROOT

    for notebook in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        sources = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]]
        loads = next(i for i, s in enumerate(sources) if "load_model(" in s or "TrackEditor(" in s)
        before = "\n".join(sources[:loads])
        assert "accept the licence" in before and "notebook_login()" in before, notebook.name
