"""Every notebook runs top to bottom on the toy model (CPU), and is committed without outputs."""

import json

import pytest
from conftest import ROOT, executed_notebook

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_the_toy_model(path):
    errors, _, _ = executed_notebook(path.name)  # the claims tests read the same run's numbers
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_course_template(path):
    """Colab badge to itself, its time on a CPU and on a T4, learning goals, a setup cell that works on
    Colab and locally, the model picked in one line, a summary; and the README lists it."""
    cells = json.loads(path.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells]
    assert f"colab.research.google.com/github/sgi2v-lite/sgi2v-lite/blob/main/notebooks/{path.name}" in sources[0]
    assert "## What you will learn" in sources[0]
    assert "**Time:**" in sources[0] and "2-core CPU" in sources[0] and "T4" in sources[0]  # its time, both ways
    setup = next(s for s in sources if '"google.colab" in sys.modules' in s)
    assert "pip" in setup and "install" in setup
    assert sum(s.count('MODEL = "auto"') for s in sources) == 1
    assert any(line == "## Summary" for s in sources for line in s.splitlines())
    assert f"notebooks/{path.name}" in (ROOT / "README.md").read_text()
