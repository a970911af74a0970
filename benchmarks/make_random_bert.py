"""A random-weight BERT text encoder directory of a given size (default: BERT-base, 12 x 768), with
the packaged MiniLM's uncased WordPiece tokenizer, usable as ``--text-encoder DIR``.

    python benchmarks/make_random_bert.py /tmp/bert-base-random
    python benchmarks/make_random_bert.py DIR --layers 2           # the authors' shapes, 2 layers

Why: trials/hour and GPU memory at the paper's encoder size, without downloading a model.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("directory")
    p.add_argument("--layers", type=int, default=12, help="(default: 12)")
    p.add_argument("--hidden", type=int, default=768, help="(default: 768)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import torch
    from transformers import BertConfig, BertModel

    from mmsa_core.models.text_encoder import minilm_dir

    out = Path(args.directory)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    BertModel(BertConfig(hidden_size=args.hidden, num_hidden_layers=args.layers,
                         num_attention_heads=args.hidden // 64, intermediate_size=4 * args.hidden)
              ).save_pretrained(str(out))
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (minilm_dir() / name).exists():
            shutil.copy(minilm_dir() / name, out / name)
    print(out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
