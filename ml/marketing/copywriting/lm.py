"""The causal language model that writes marketing copy, and the small one trained here.

Any Hugging Face causal LM saved in a local folder (weights, config and tokenizer, as
``save_pretrained`` writes them) can write the copy: point the ``INTERESTFLOW_COPY_MODEL``
setting, or ``generate_copy``'s ``model`` Param, at the folder. Nothing is downloaded.

Without one, :func:`catalogue_model` trains a small GPT-2-style model (two layers, a byte-level
BPE vocabulary learnt from the same text) on the shop's own catalogue for a bounded number of
steps, and saves it the same way under ``<artifacts>/copy_lm/<key>``, where ``key`` hashes the
catalogue text and the training settings: a later run with an unchanged catalogue loads it
instead of training again. Loading, prompting and decoding (:func:`load`, :func:`write`) are the
same code for both.

Each training document is one product as the prompt states it, followed by its description::

    Product: Bramble Chelsea boots, red | Brand: Bramble | Category: Boots | Price: 238.38 | Color: red | Material: nylon
    Copy: This one for the gym. Nylon construction.

so a prompt ending in ``Copy:`` asks for a product's copy. The small model has only read this
catalogue: it mixes up products now and then, which is what the grounding gate (``gate``) is for.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.marketing.copywriting.gate import whole_sentences

PROMPT = "Product: {title} | Brand: {brand} | Category: {category} | Price: {price:.2f}{attributes}\nCopy:"
END = "<|endoftext|>"
# where a continuation stops: the end token, a new line, or prompt syntax (another product's facts)
STOP = re.compile(r"<\|endoftext\|>|\n|Product:|Copy:|\|")


@dataclass(frozen=True)
class LMSettings:
    """How the small catalogue model is trained (defaults: about 15 s on 2 cores).

    ``max_epochs``: a small catalogue stops after that many passes over its documents instead of
    ``steps`` (the tiny shop's 120 products: 75 steps; at 200 the model memorises more of the
    catalogue and the gate passes fewer of its candidates, 0.79 vs 0.85 in ``bench copy``)."""

    steps: int = 200
    max_epochs: float = 10.0
    batch_size: int = 16
    max_length: int = 96  # tokens per training document
    vocab_size: int = 2000
    width: int = 128
    layers: int = 2
    heads: int = 4
    learning_rate: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.max_epochs <= 0:
            raise ValueError(
                f"copy model settings: steps and batch_size must be >= 1 and max_epochs > 0, got "
                f"steps={self.steps}, batch_size={self.batch_size}, max_epochs={self.max_epochs}"
            )

    def steps_for(self, documents: int) -> int:
        """Training steps over ``documents`` documents: ``steps``, or fewer where those would pass
        over the documents more than ``max_epochs`` times."""
        return max(1, min(self.steps, math.ceil(self.max_epochs * documents / self.batch_size)))


def product_facts(items: pd.DataFrame) -> pd.DataFrame:
    """item_id, title, brand, category (the leaf of ``category_path``), price, description and
    attributes (a dict: the JSON object of ``attributes``, empty when missing or not an object)
    of catalogue rows (``staging.stg_shop__items``); rows without a title or price are left out
    (nothing true can be said about them)."""
    df = items.dropna(subset=["title", "price"]).copy()
    df["attributes"] = [_attributes(a) for a in df.get("attributes", pd.Series(None, index=df.index))]
    df["category"] = df["category_path"].fillna("").astype(str).str.split(" > ").str[-1].str.strip()
    for col in ("brand", "description"):
        df[col] = df[col].fillna("").astype(str)
    df["price"] = df["price"].astype(float)
    return df[["item_id", "title", "brand", "category", "price", "description", "attributes"]].reset_index(drop=True)


def _attributes(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str | int | float)} if isinstance(value, dict) else {}


def prompt(product: Any) -> str:
    """The prompt asking for one product's copy (``product``: a row of :func:`product_facts`;
    its attributes follow the price, in name order: `` | Color: grey | Material: wool``)."""
    attributes = "".join(f" | {k.capitalize()}: {v}" for k, v in sorted(product.attributes.items()))
    return PROMPT.format(
        title=product.title, brand=product.brand, category=product.category, price=product.price, attributes=attributes
    )


def documents(facts: pd.DataFrame) -> list[str]:
    """The training documents: each product's prompt followed by its description."""
    return [f"{prompt(p)} {' '.join(p.description.split())}" for p in facts.itertuples(index=False)]


def catalogue_model(items: pd.DataFrame, root: Path, settings: LMSettings | None = None) -> Path:
    """The folder of the small model trained on ``items``' text with ``settings``: loaded from
    ``root`` when this catalogue and these settings trained one already, else trained now and
    saved there (written under a temporary name, then renamed: never a half-saved model)."""
    settings = settings or LMSettings()
    docs = documents(product_facts(items).sort_values("item_id", kind="stable"))  # the same whatever the row order
    if not docs:
        raise ValueError("the catalogue has no product with a title and a price: nothing to train a copy model on")
    key = hashlib.sha256(json.dumps([asdict(settings), docs]).encode()).hexdigest()[:16]
    path = root / key
    if (path / "config.json").exists():
        return path
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / f".{key}.{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    train(docs, scratch, settings)
    if not (path / "config.json").exists():
        shutil.rmtree(path, ignore_errors=True)  # a folder without a model in it: nothing to keep
        try:
            os.replace(scratch, path)
        except OSError:  # another run renamed the same model into place first
            if not (path / "config.json").exists():
                raise
    shutil.rmtree(scratch, ignore_errors=True)
    return path


def _tokenizer(docs: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[END], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(docs, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=END, eos_token=END, pad_token=END)


def train(docs: list[str], out: Path, settings: LMSettings) -> dict[str, Any]:
    """Train the small model on ``docs`` for ``settings.steps_for(len(docs))`` steps of random
    batches and save it (and its tokenizer, and ``training.json``: settings, documents, steps
    run, first and last loss) to ``out``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(settings.seed)
    tokenizer = _tokenizer(docs, settings.vocab_size)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=settings.max_length,
        n_embd=settings.width,
        n_layer=settings.layers,
        n_head=settings.heads,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    encoded = [ids[: settings.max_length] for ids in tokenizer([d + END for d in docs])["input_ids"]]
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    rng = np.random.default_rng(settings.seed)
    losses = []
    model.train()
    for _ in range(settings.steps_for(len(encoded))):
        batch = [encoded[i] for i in rng.choice(len(encoded), settings.batch_size)]
        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), tokenizer.eos_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, doc in enumerate(batch):
            ids[row, : len(doc)] = torch.tensor(doc)
            mask[row, : len(doc)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        losses.append(loss.item())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    report = {
        "settings": asdict(settings),
        "documents": len(docs),
        "steps": len(losses),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }
    (out / "training.json").write_text(json.dumps(report, indent=2))
    return report


@dataclass
class Writer:
    """A loaded causal LM and its text-generation pipeline; ``name``: the folder it came from."""

    name: str
    pipeline: Any


def load(path: Path | str) -> Writer:
    """The causal LM saved in the local folder ``path`` (never a download), ready to write."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = Path(path)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder}: no causal language model here (config.json is missing)")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    model.eval()
    return Writer(str(folder), pipeline("text-generation", model=model, tokenizer=tokenizer))


def avoided_tokens(tokenizer: Any, words: list[str]) -> list[list[int]]:
    """Token sequences of ``words`` as they may appear in text (lower case, capitalised, after a
    space or not), for ``generate``'s ``bad_words_ids``."""
    forms = {f"{space}{case}" for w in words for case in (w, w.lower(), w.capitalize()) for space in ("", " ")}
    return [ids for ids in tokenizer(sorted(forms), add_special_tokens=False)["input_ids"] if ids]


def write(
    writer: Writer,
    text: str,
    n: int,
    seed: int,
    max_new_tokens: int = 48,
    avoid: list[str] | None = None,
    temperature: float = 0.8,
    top_k: int = 40,
) -> list[str]:
    """``n`` sampled continuations of the prompt ``text`` (each cut at the end token, a new line
    or prompt syntax, then after its last whole sentence), the same for the same seed;
    ``avoid``: words never written (constrained decoding: their tokens are masked out where
    they would complete the word)."""
    import torch

    torch.manual_seed(seed)
    tokenizer = writer.pipeline.tokenizer
    bad = avoided_tokens(tokenizer, avoid) if avoid else None
    outputs = writer.pipeline(
        text,
        max_new_tokens=max_new_tokens,
        do_sample=True,
        top_k=top_k,
        temperature=temperature,
        num_return_sequences=n,
        return_full_text=False,
        bad_words_ids=bad,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    return [whole_sentences(" ".join(STOP.split(o["generated_text"], maxsplit=1)[0].split())) for o in outputs]
