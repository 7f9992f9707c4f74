"""Semantic embeddings: a paper's title and abstract as one unit vector, offline, without torch.

The model is all-MiniLM-L6-v2 (Apache-2.0), exported once to ONNX and
quantised to int8 by ``scripts/build_model.py``; the files ship inside the
package under ``newsletter/models/`` with a manifest of their sha256 sums, so
nothing is downloaded at run time.  It runs on ``onnxruntime`` and the
``tokenizers`` library (about 120 MiB installed with their dependencies,
plus the 23 MB model, against over 1 GiB for PyTorch).  Each text is
truncated to *max_tokens* word pieces, the last hidden states are averaged
over the attention mask and the mean is L2-normalised, exactly as
sentence-transformers does for this model.  Quantisation is dynamic
(activation scales are taken per call), so a text's vector moves a little
with its batch-mates (cosine > 0.99 to itself embedded alone); the same
texts in the same order always give the same vectors.

Both libraries are imported only when a model is loaded: importing this module
stays cheap, so the CLI starts fast.  :func:`load_embedder` never raises: when
the model cannot be used it logs a warning and returns None, and the caller
ranks with the lexical model alone.

Embeddings are stored as float16 (:func:`to_blob`, :func:`from_blob`): 768
bytes per paper for 384 dimensions, and cosines change by well under 1e-3.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .errors import ModelError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DEFAULT_MAX_TOKENS = 256
"""The model's own limit in sentence-transformers; see the README for 128 and 192."""
DEFAULT_BATCH = 8
"""Texts per onnxruntime call.  Texts are sorted by length first, so a batch pads little.
Batch 16 is no faster per CPU-second and peaks ~130 MB higher (onnxruntime's arena)."""
_TOKENIZE_CHUNK = 256

Matrix = npt.NDArray[np.float32]


@runtime_checkable
class TextEmbedder(Protocol):
    """Anything that turns texts into unit-length float32 rows (one per text)."""

    @property
    def name(self) -> str:
        """Identifies the model and its settings: embeddings from different names must not be mixed."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Matrix:
        """A ``(len(texts), dim)`` float32 array of L2-normalised rows."""
        ...


class TextVectorStore(Protocol):
    """Where vectors of readers' texts are kept between runs (:class:`newsletter.store.Store`)."""

    def text_vectors(self, model: str, texts: Sequence[str], today: date) -> Mapping[str, npt.NDArray[Any]]: ...

    def put_text_vectors(self, model: str, texts: Sequence[str], matrix: npt.ArrayLike, today: date) -> None: ...


class StoredTexts:
    """A :class:`TextEmbedder` that asks the store first: a reader's phrases are embedded once, not every run.

    10,000 readers' phrases are ~20,000 short texts: embedding them again in
    every daily run would cost tens of seconds of the model.  Vectors go
    through float16 (the stored precision) even when fresh, so a run ranks
    the same whether a phrase was embedded now or a month ago; texts the
    store lacks are embedded each on its own (see
    :func:`newsletter.match.embed_phrases`).  :meth:`prefetch` reads many
    texts' vectors in one query, so the one-text calls that follow are
    lookups in memory.
    """

    def __init__(self, inner: TextEmbedder, store: TextVectorStore, today: date) -> None:
        self.inner = inner
        self.store = store
        self.today = today
        self._known: dict[str, Matrix] = {}
        self._asked: set[str] = set()
        """Texts already looked up in the store, found or not: a new phrase costs one query, not two."""

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def prefetch(self, texts: Sequence[str]) -> None:
        """Read the stored vectors of *texts* at once (and mark them used today)."""
        wanted = [t for t in dict.fromkeys(texts) if t not in self._asked]
        if wanted:
            self._asked.update(wanted)
            found = self.store.text_vectors(self.name, wanted, self.today)
            self._known.update((t, np.asarray(v, dtype=np.float32)) for t, v in found.items())

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.prefetch(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self._known]
        if missing:
            fresh = np.stack([np.asarray(self.inner.embed([t])[0], dtype=np.float16) for t in missing])
            self.store.put_text_vectors(self.name, missing, fresh, self.today)
            self._known.update(zip(missing, fresh.astype(np.float32), strict=True))
        rows = np.stack([self._known[t] for t in texts])
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return np.asarray(rows / np.where(norms > 0, norms, 1), dtype=np.float32)


def default_model_dir() -> Path:
    """The model folder inside the installed package."""
    return Path(str(resources.files("newsletter") / "models"))


def paper_text(title: str, abstract: str) -> str:
    """The text embedded for a paper: ``title + ". " + abstract`` (the form the model was measured with)."""
    title, abstract = title.strip(), abstract.strip()
    if not abstract:
        return title
    if not title:
        return abstract
    return f"{title}. {abstract}"


def to_blob(matrix: npt.ArrayLike) -> bytes:
    """A matrix of embeddings as little-endian float16 bytes (768 bytes per 384-d row)."""
    arr = np.asarray(matrix)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"expected a 1- or 2-d array of embeddings, got {arr.ndim} dimensions")
    return arr.astype("<f2", copy=False).tobytes()


def from_blob(blob: bytes, dim: int) -> Matrix:
    """The float32 ``(n, dim)`` matrix that :func:`to_blob` wrote."""
    if dim <= 0 or len(blob) % (2 * dim):
        raise ValueError(f"{len(blob)} bytes are not a whole number of float16 rows of {dim} values")
    return np.frombuffer(blob, dtype="<f2").reshape(-1, dim).astype(np.float32)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_REINSTALL = "reinstall newsletter (pip install --force-reinstall newsletter) or rebuild it (scripts/build_model.py)"


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """The manifest, after checking that every file it lists is there with its sha256."""
    path = model_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files: dict[str, str] = {name: meta["sha256"] for name, meta in manifest["files"].items()}
        missing = [key for key in ("onnx", "tokenizer", "dim", "max_tokens") if key not in manifest]
        if missing:
            raise KeyError(f"no {', '.join(missing)}")
    except FileNotFoundError as e:
        raise ModelError(f"the embedding model's manifest {path} is missing: {_REINSTALL}") from e
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelError(f"the embedding model's manifest {path} is unreadable ({e}): {_REINSTALL}") from e
    for name, expected in files.items():
        file = model_dir / name
        try:
            actual = _sha256(file)
        except OSError as e:
            raise ModelError(f"the embedding model file {file} is missing or unreadable ({e}): {_REINSTALL}") from e
        if actual != expected:
            raise ModelError(
                f"the embedding model file {file} is corrupt (sha256 {actual[:12]}…, expected {expected[:12]}…): "
                f"{_REINSTALL}"
            )
    return dict(manifest)


class OnnxEmbedder:
    """The shipped int8 ONNX sentence model, on onnxruntime (CPU, all available cores)."""

    def __init__(
        self,
        model_dir: Path | str | None = None,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_size: int = DEFAULT_BATCH,
        threads: int | None = None,
        spin: bool | None = None,
    ) -> None:
        folder = Path(model_dir) if model_dir is not None else default_model_dir()
        manifest = read_manifest(folder)
        limit = int(manifest.get("max_position_embeddings", 512))
        if not 2 < max_tokens <= limit:
            raise ValueError(f"max_tokens must be between 3 and {limit}, got {max_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ModelError(f"the embedding model needs onnxruntime and tokenizers ({e}): reinstall newsletter") from e
        try:
            tokenizer = Tokenizer.from_file(str(folder / manifest["tokenizer"]))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or _cores()
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only: no optimiser chatter on stderr
            if spin is not None:
                options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
            session = ort.InferenceSession(
                str(folder / manifest["onnx"]), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own untyped errors; the sums matched, so say so
            raise ModelError(
                f"the embedding model in {folder} passed its checksums but does not load ({e}): {_REINSTALL}"
            ) from e
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer = tokenizer
        self._session = session
        self._inputs = {i.name for i in session.get_inputs()}
        self._output = session.get_outputs()[0].name
        self._dim = int(manifest["dim"])
        self._name = f"{manifest.get('name', 'all-MiniLM-L6-v2')}-int8@{max_tokens}"
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.manifest = manifest

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Unit-length embeddings, one row per text, in the order given."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        ids: list[npt.NDArray[np.int64]] = []
        for start in range(0, len(texts), _TOKENIZE_CHUNK):  # Encoding objects are big: keep only the ids
            batch = self._tokenizer.encode_batch(list(texts[start : start + _TOKENIZE_CHUNK]))
            ids.extend(np.asarray(e.ids, dtype=np.int64) for e in batch)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch: less padding
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(ids[i]) for i in chunk)
            input_ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            hidden = self._session.run([self._output], feed)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[chunk] = pooled / np.maximum(norms, 1e-12)
        return out


def load_embedder(model_dir: Path | str | None = None, **options: Any) -> TextEmbedder | None:
    """The shipped semantic model, or None (with a warning) when it cannot be loaded: rank lexically then."""
    try:
        return OnnxEmbedder(model_dir, **options)
    except ModelError as e:
        log.warning("semantic ranking is off, using the lexical model only: %s", e)
        return None


def text_key(text: str) -> str:
    """A short fingerprint of an embedded text, for :class:`KnownVectors`."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


class KnownVectors:
    """Vectors computed ahead for known texts (the bundled sample papers), by the same model.

    ``scripts/build_sample_embeddings.py`` writes ``samples/embeddings.npz``;
    the demo and every test on the samples then skip the model for those 334
    papers.  A file made by another model (another :attr:`TextEmbedder.name`)
    is ignored, so vectors of two models are never mixed.
    """

    def __init__(self, path: Path, model: str) -> None:
        self._vectors: dict[str, Matrix] = {}
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["model"]) != model:
                    return
                keys, vectors = data["keys"], np.asarray(data["vectors"], dtype=np.float32)
        except (OSError, KeyError, ValueError):
            return
        self._vectors = {str(k): v for k, v in zip(keys, vectors, strict=True)}

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, text: str) -> Matrix | None:
        return self._vectors.get(text_key(text))


def sample_vectors_path() -> Path:
    return Path(str(resources.files("newsletter") / "samples" / "embeddings.npz"))
