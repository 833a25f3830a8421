"""Query-time encoder on ONNX Runtime: the exported model plus its tokenizer, no torch.

Importing torch takes seconds; onnxruntime loads the exported model in about 0.1 s and embeds a
question in about 2 ms on two cores, which is what a bot's cold start and latency need.
The folder is written by index/encoders/onnx_export.py; its encoder.json says how to pool.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "encoder.json"


def cpu_session(model_path: Path):
    """An ONNX Runtime session on the CPU as citebot runs them: one graph at a time, idle threads asleep."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1  # one graph at a time; its matrix products use the cores
    options.log_severity_level = 3
    # Idle ONNX Runtime threads spin by default; on two cores that starved FAISS's OpenMP threads
    # (exact search at 10k chunks: 12.9 ms with spinning, 1.5 ms without).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """Texts -> L2-normalised float32 vectors with an exported sentence-transformers model."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.config = json.loads((folder / CONFIG_FILE).read_text())
        self.dim = int(self.config["dim"])
        self.max_tokens = int(self.config["max_seq_length"])
        self.pooling = self.config["pooling"]  # "mean" or "cls"
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        # Configured once, never changed: encoding alone does not mutate the tokenizer, so threads may share it.
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.enable_padding(pad_id=int(self.config.get("pad_id", 0)))
        self.session = cpu_session(folder / MODEL_FILE)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feed)[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
