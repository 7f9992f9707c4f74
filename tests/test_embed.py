"""The shipped semantic model, run for real: checksums, pooling, truncation, fallback, storage."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from newsletter.embed import (
    MANIFEST,
    OnnxEmbedder,
    StoredTexts,
    TextEmbedder,
    default_model_dir,
    from_blob,
    load_embedder,
    paper_text,
    read_manifest,
    to_blob,
)
from newsletter.errors import ModelError, NewsletterError
from newsletter.store import Store

QUANT = "Post-training quantization of large language models to 4-bit weights with little loss in accuracy."
PARAPHRASE = "Compressing LLM weights to four bits after training while keeping the model almost as accurate."
UNRELATED = "A survey of irrigation scheduling for vineyards in dry Mediterranean climates."


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder()


def _copy_model(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(default_model_dir(), folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return folder


def test_the_model_ships_with_a_manifest_whose_sums_match() -> None:
    manifest = read_manifest(default_model_dir())
    assert {manifest["onnx"], "tokenizer.json", "LICENSE", "NOTICE"} <= set(manifest["files"])
    assert manifest["dim"] == 384 and manifest["max_tokens"] == 256 and manifest["license"] == "Apache-2.0"
    assert "Apache License" in (default_model_dir() / "LICENSE").read_text()
    assert manifest["verification"]["mean_cosine_vs_pytorch"] >= 0.98


def test_embeddings_are_unit_rows_and_deterministic(embedder: OnnxEmbedder) -> None:
    assert isinstance(embedder, TextEmbedder) and embedder.dim == 384 and "256" in embedder.name
    texts = [QUANT, PARAPHRASE, UNRELATED, "", "x"]
    first = embedder.embed(texts)
    assert first.shape == (5, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(embedder.embed(texts), first)
    assert embedder.embed([]).shape == (0, 384)


def test_order_of_the_input_is_kept_despite_sorting_by_length(embedder: OnnxEmbedder) -> None:
    texts = [QUANT * 3, UNRELATED, PARAPHRASE]
    one_by_one = np.vstack([embedder.embed([t]) for t in texts])
    together = embedder.embed(texts)
    # dynamic int8 scales activations per batch, so batch-mates move a row a little, never to another text
    assert np.all(np.sum(one_by_one * together, axis=1) > 0.98)
    assert np.argmax(together @ one_by_one.T, axis=1).tolist() == [0, 1, 2]


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(embedder: OnnxEmbedder) -> None:
    q, p, u = embedder.embed([QUANT, PARAPHRASE, UNRELATED])
    assert float(q @ p) > float(q @ u) + 0.3


def test_long_text_is_truncated_without_error(embedder: OnnxEmbedder) -> None:
    long = " ".join([QUANT] * 400)  # ~8,000 word pieces, far past the model's 512 positions
    head = " ".join([QUANT] * 30)  # already past 256 tokens: the same first 256 are kept
    a, b = embedder.embed([long, head])
    assert np.isfinite(a).all() and float(a @ b) > 0.999


def test_max_tokens_is_checked() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        OnnxEmbedder(max_tokens=4096)


def test_a_corrupted_model_file_is_a_clear_error_and_load_embedder_falls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _copy_model(tmp_path)
    onnx = folder / json.loads((folder / MANIFEST).read_text())["onnx"]
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"corrupt.*reinstall") as info:
        OnnxEmbedder(folder)
    assert isinstance(info.value, NewsletterError) and onnx.name in str(info.value)
    with caplog.at_level(logging.WARNING, logger="newsletter.embed"):
        assert load_embedder(folder) is None
    assert "lexical" in caplog.text and "corrupt" in caplog.text


def test_a_missing_file_or_manifest_is_a_clear_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _copy_model(tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"tokenizer\.json is missing"):
        OnnxEmbedder(folder)
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(ModelError, match=r"manifest .* unreadable"):
        OnnxEmbedder(folder)
    with caplog.at_level(logging.WARNING, logger="newsletter.embed"):
        assert load_embedder(tmp_path / "nowhere") is None
    assert "manifest" in caplog.text and "missing" in caplog.text


def test_load_embedder_gives_the_shipped_model() -> None:
    model = load_embedder(max_tokens=128)
    assert model is not None and model.dim == 384 and model.name.endswith("@128")


def test_blob_round_trip_is_768_bytes_per_paper(embedder: OnnxEmbedder) -> None:
    matrix = embedder.embed([QUANT, PARAPHRASE, UNRELATED])
    blob = to_blob(matrix)
    assert len(blob) == 3 * 768 and len(to_blob(matrix[0])) == 768
    back = from_blob(blob, 384)
    assert back.shape == (3, 384) and back.dtype == np.float32
    np.testing.assert_allclose(back, matrix, atol=1e-3)
    np.testing.assert_allclose(back @ back.T, matrix @ matrix.T, atol=2e-3)
    assert from_blob(b"", 384).shape == (0, 384)
    with pytest.raises(ValueError, match="whole number"):
        from_blob(blob[:-2], 384)


def test_paper_text_joins_title_and_abstract() -> None:
    assert paper_text(" Attention Is All You Need ", "We propose the Transformer.\n") == (
        "Attention Is All You Need. We propose the Transformer."
    )
    assert paper_text("Only a title", "  ") == "Only a title"


def test_importing_the_module_does_not_import_onnxruntime() -> None:
    code = "import sys, newsletter.embed; print('onnxruntime' in sys.modules, 'tokenizers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


class Counting:
    """The real model, counting the texts it is asked to embed."""

    def __init__(self, inner: OnnxEmbedder) -> None:
        self.inner = inner
        self.asked: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.asked += list(texts)
        return self.inner.embed(texts)


def test_readers_phrases_are_embedded_once_and_kept_for_the_next_run(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    phrases = ["post-training quantization", "mixture of experts", "graph neural networks"]
    today = date(2026, 11, 23)
    store = Store(tmp_path)
    try:
        first = Counting(embedder)
        fresh = StoredTexts(first, store, today).embed(phrases)
        assert first.asked == phrases
        second = Counting(embedder)  # the next day's run: a new process, the same data folder
        again = StoredTexts(second, store, today + timedelta(days=1)).embed([*phrases, "diffusion models"])
        assert second.asked == ["diffusion models"], "only the new phrase reaches the model"
        np.testing.assert_array_equal(again[:3], fresh)  # the same vectors, whichever run embedded them
        assert np.allclose(np.linalg.norm(again, axis=1), 1.0, atol=1e-3)
        assert float(again[0] @ embedder.embed(phrases[:1])[0]) > 0.9999  # each on its own; float16 changes nothing
        # Pruning forgets texts no run asked for since the cut-off, and keeps the rest.
        store.prune_entries(datetime(2026, 11, 25, tzinfo=UTC))  # last asked for on the 24th
        assert set(store.text_vectors(first.name, [*phrases, "diffusion models"], today)) == set()
        StoredTexts(second, store, date(2026, 11, 30)).embed(["diffusion models"])
        store.prune_entries(datetime(2026, 11, 29, tzinfo=UTC))
        assert set(store.text_vectors(first.name, ["diffusion models"], today)) == {"diffusion models"}
    finally:
        store.close()


def test_a_read_only_store_lends_its_vectors_and_keeps_nothing(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    Store(tmp_path).close()
    reader = Store(tmp_path, read_only=True)
    try:
        counting = Counting(embedder)
        StoredTexts(counting, reader, date(2026, 11, 23)).embed(["federated learning"])
        StoredTexts(counting, reader, date(2026, 11, 23)).embed(["federated learning"])
        assert counting.asked == ["federated learning", "federated learning"]  # nothing was written to find
    finally:
        reader.close()


def test_a_phrase_gets_the_same_vector_whatever_is_new_beside_it(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    """The int8 model quantises per batch: phrases are embedded each on their own, so a reader's
    ranking does not depend on which other readers' phrases were new that day."""
    with_others = StoredTexts(embedder, Store(tmp_path / "a"), date(2026, 11, 23))
    alone = StoredTexts(embedder, Store(tmp_path / "b"), date(2026, 11, 23))
    try:
        together = with_others.embed(["mixture of experts", "speculative decoding", "FP8 training"])
        np.testing.assert_array_equal(together[1], alone.embed(["speculative decoding"])[0])
    finally:
        with_others.store.close()  # type: ignore[attr-defined]
        alone.store.close()  # type: ignore[attr-defined]
