"""The packaged SmolLM2 through kiln.compile / kiln.load: generation agrees
with kiln-run, streaming with the whole text, seeded sampling repeats, and
logits survive save/load."""

import subprocess

import numpy as np

import kiln

PROMPT = "The capital of France is"


def test_greedy_matches_kiln_run(smollm2, kiln_run):
    text = smollm2.generate(PROMPT, max_tokens=24, temperature=0)
    assert text.strip()
    ref = subprocess.run([kiln_run, "-m", smollm2.path, "-p", PROMPT, "-n", "24", "-t", "2",
                          "--temp", "0"], capture_output=True, text=True, check=True)
    assert ref.stdout[:-1] == text  # kiln-run ends with a newline


def test_stream_pieces_join_to_text(smollm2):
    whole = smollm2.generate(PROMPT, max_tokens=24, temperature=0)
    pieces = list(smollm2.generate(PROMPT, max_tokens=24, temperature=0, stream=True))
    assert len(pieces) > 1
    assert "".join(pieces) == whole


def test_seeded_sampling_reproducible(smollm2):
    kw = dict(max_tokens=24, temperature=0.9, top_k=40, top_p=0.95)
    a = smollm2.generate(PROMPT, seed=1234, **kw)
    b = smollm2.generate(PROMPT, seed=1234, **kw)
    assert a == b
    others = {smollm2.generate(PROMPT, seed=s, **kw) for s in range(1, 5)}
    assert len(others | {a}) > 1  # the seed matters


def test_chat(smollm2):
    assert smollm2.generate("What is 2+2?", max_tokens=16, temperature=0, chat=True).strip()


def test_tokenize_detokenize(smollm2):
    ids = smollm2.tokenize("Hello, world! héllo")
    assert all(isinstance(i, int) for i in ids)
    assert smollm2.detokenize(ids).endswith("Hello, world! héllo")


def test_device(smollm2):
    # A CPU artifact runs on the CPU, asked for or by default.
    assert smollm2.device == "cpu"
    with kiln.load(smollm2.path, threads=1, device="cpu") as model:
        assert model.device == "cpu"
        assert model.generate(PROMPT, max_tokens=4, temperature=0) == \
            smollm2.generate(PROMPT, max_tokens=4, temperature=0)


def test_logits_match_after_save_load(smollm2, tmp_path):
    tokens = smollm2.tokenize(PROMPT)
    last = smollm2.logits(tokens)
    assert last.shape == (smollm2.n_vocab,) and last.dtype == np.float32
    rows = smollm2.logits(tokens, rows=3)
    assert rows.shape == (3, smollm2.n_vocab)
    np.testing.assert_array_equal(rows[-1], last)
    path = tmp_path / "copy.kiln"
    smollm2.save(path)
    with kiln.load(path, threads=1) as again:
        np.testing.assert_array_equal(again.logits(tokens), last)
        assert again.generate(PROMPT, max_tokens=8, temperature=0) == \
            smollm2.generate(PROMPT, max_tokens=8, temperature=0)


def test_compile_reports_progress(smollm2):
    fractions = [f for _, f in smollm2.progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(stage.startswith("code generation") for stage, _ in smollm2.progress)
