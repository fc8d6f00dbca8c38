"""benchmarks/gpu_svd.py in its tiny CPU mode: every run and phase is reported, our way and the
reference way give the same features and loss; each run is `sampler.generate` itself, timed by phase."""

import importlib.util
import sys

import torch
from conftest import ROOT

EXPECTED_RUNS = (
    "reference, reference way",
    "reference, our way (ckpt off)",
    "reference, our way (ckpt on)",
    "lite, our way (ckpt off)",
    "lite, our way (ckpt on)",
)
EXPECTED_PHASES = (
    "encode (CLIP + VAE)",
    "denoising steps (CFG)",
    "optimisation iterations",
    "frequency mix",
    "decode (VAE)",
    "offload / reload",
)


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_svd", ROOT / "benchmarks" / "gpu_svd.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_mode_reports_every_run_and_our_way_matches_the_reference_way(tmp_path):
    script = load_script()
    threads = torch.get_num_threads()
    out = tmp_path / "results.md"
    try:
        # one thread: tiny ops on a shared 2-core machine stall at every OpenMP barrier otherwise
        results = script.main(
            "--tiny --threads 1 --steps 2 --iterations 1 --no-warmup --no-meta-flops".split() + ["--out", str(out)]
        )
    finally:
        torch.set_num_threads(threads)
    markdown = out.read_text()
    assert markdown == results["markdown"]

    # the table: a row per run and phase, a total per run; the reference way also casts its UNet
    table_lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]) for line in table_lines}
    for run in EXPECTED_RUNS:
        for phase in EXPECTED_PHASES + ("**total**",):
            assert (run, phase) in rows, (run, phase)
    assert ("reference, reference way", "UNet cast to fp32 and back") in rows
    assert not any(run.startswith("reference, our") and phase.startswith("UNet cast") for run, phase in rows)
    assert "n/a" in markdown and "TINY CPU demonstration" in markdown  # no CUDA: no memory figures

    runs = {run.name: run for run in results["runs"]}
    assert tuple(runs) == EXPECTED_RUNS
    for run in runs.values():
        phases = run.result["phases"]
        assert phases["denoising steps (CFG)"]["units"] == run.config.num_inference_steps == 2
        assert phases["optimisation iterations"]["units"] == len(run.config.optimised_steps) * run.config.iterations
        assert phases["total"]["ms"] > 0 and run.result["finite"]
        assert run.result["flops"]["total"] > 0

    # checkpointing re-runs the checkpointed blocks: more FLOPs, same math
    counts = results["flops"]["reference"][1]
    assert counts["optimisation_pass_ckpt_on"] > counts["optimisation_pass_ckpt_off"] > 0
    assert counts["cfg_forward"] > 0  # attention counted on the CPU too (torch counts 0 without help)

    # our way vs the reference way on the same latent, within half-precision tolerance
    tolerance = results["tolerance"]
    for comparison in results["equality"].values():
        assert comparison["features"] <= tolerance
        assert comparison["loss"] <= tolerance
        assert comparison["step_sign_agreement"] > 0.9
    # the timed runs start from the same latent: their first losses agree too (later ones drift
    # apart slowly, as any two precisions do through AdamW's normalised steps)
    first = runs["reference, reference way"].result["losses"][0][0]
    for name in ("reference, our way (ckpt off)", "reference, our way (ckpt on)"):
        assert abs(runs[name].result["losses"][0][0] - first) <= tolerance * abs(first)

    # each run is the package's own generate: no loop of the script's own to drift from it
    import inspect

    source = inspect.getsource(script)
    assert "scheduler.timesteps)" not in source and "scheduler.step(" not in source
