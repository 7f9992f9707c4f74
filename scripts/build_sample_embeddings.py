"""Precompute the shipped model's vectors of the bundled sample papers: ``newsletter/samples/embeddings.npz``.

    python scripts/build_sample_embeddings.py

The demo and the test suite fetch the same 334 sample papers again and again;
with this file the model embeds them zero times instead of once per run (see
``newsletter.embed.KnownVectors``).  Run it again whenever the model or the
samples change: a file made by another model is ignored at run time, never
mixed in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from newsletter import sources
from newsletter.embed import load_embedder, paper_text, sample_vectors_path, text_key


def main() -> None:
    samples = Path(str(sample_vectors_path().parent))
    items = [
        *sources.parse("arxiv", "sample", (samples / "arxiv_cs.rss").read_bytes()),
        *sources.parse("hf", "sample", (samples / "hf_daily_papers.json").read_bytes()),
    ]
    texts = list(dict.fromkeys(paper_text(d.title, d.summary) for d in items))
    merged = sources.merge_all({}, items, datetime.now(UTC)).changed  # merged entries keep the longer abstract
    texts = list(dict.fromkeys([*texts, *(paper_text(e.title, e.summary) for e in merged.values())]))
    embedder = load_embedder()
    if embedder is None:
        raise SystemExit("the model did not load; see the warning above")
    vectors = embedder.embed(texts).astype(np.float16)
    keys = np.array([text_key(t) for t in texts])
    np.savez_compressed(sample_vectors_path(), keys=keys, vectors=vectors, model=np.array(embedder.name))
    print(f"wrote {len(texts)} vectors of {embedder.name} to {sample_vectors_path()}")


if __name__ == "__main__":
    main()
