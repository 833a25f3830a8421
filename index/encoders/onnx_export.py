"""Export a sentence-transformers model to ONNX once, into the data directory, for torch-free queries.

Runs where torch is loaded anyway (an index build, or the first question when the export is
missing). Nothing is downloaded: the model comes from its local folder or its PyPI package.
Only Transformer -> Pooling (mean or CLS) [-> Normalize] models are exported; anything else
keeps answering through torch.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path

from .onnx_encoder import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the exported graph or encoder.json changes
OPSET = 17


class NotExportable(RuntimeError):
    """This model cannot run on ONNX Runtime here; queries use torch instead."""


def export_folder(cache_dir: Path, location: str) -> Path:
    """Where the export of the model at location lives: keyed by its files' names, sizes and times."""
    h = hashlib.sha256(f"{EXPORT_VERSION}|{os.path.realpath(location)}".encode())
    if os.path.isdir(location):
        for name in sorted(os.listdir(location)):
            st = os.stat(os.path.join(location, name))
            h.update(f"|{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in Path(location).name)[:40]
    return Path(cache_dir) / f"{slug}-{h.hexdigest()[:16]}"


def is_exported(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE))


def export(model, folder: Path) -> Path:
    """Write model (a loaded SentenceTransformer) as ONNX + tokenizer + encoder.json into folder.

    Written to a temporary sibling and renamed, so a crash or a second process never leaves half an export.
    """
    import torch

    modules = [type(m).__name__ for m in model]
    if modules[:2] != ["Transformer", "Pooling"] or any(m != "Normalize" for m in modules[2:]):
        raise NotExportable(f"modules {modules} (only Transformer, Pooling and Normalize are exported)")
    pooling = str(getattr(model[1], "pooling_mode", "") or model[1].get_pooling_mode_str())
    if pooling not in ("mean", "cls"):
        raise NotExportable(f"pooling {pooling!r} (only mean and cls are exported)")
    tokenizer = model.tokenizer
    if not hasattr(tokenizer, "backend_tokenizer"):
        raise NotExportable("its tokenizer has no fast (tokenizers) version")

    # Tracing a copy: the exporter leaves the traced module changed (batches with padding then
    # embed differently), and the caller's model goes on embedding the corpus.
    transformer = copy.deepcopy(model[0].auto_model).eval()
    sample = tokenizer(["an example sentence"], return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class LastHidden(torch.nn.Module):
        """Keyword arguments in, last hidden state out: the graph ONNX Runtime will run."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs))).last_hidden_state

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        axes = {n: {0: "batch", 1: "tokens"} for n in names + ["last_hidden_state"]}
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings are about Python control flow we do not use
            torch.onnx.export(
                LastHidden(transformer), tuple(sample[n] for n in names), str(tmp / MODEL_FILE),
                input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                opset_version=OPSET, dynamo=False,
            )
        tokenizer.backend_tokenizer.save(str(tmp / TOKENIZER_FILE))
        config = {
            "dim": int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()),
            "max_seq_length": int(model.max_seq_length),
            "pooling": pooling,
            "pad_id": int(tokenizer.pad_token_id or 0),
            "export_version": EXPORT_VERSION,
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not is_exported(folder):  # another process finished first; theirs is as good as ours
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("Exported the embedding model to ONNX in %s", folder)
    return folder
