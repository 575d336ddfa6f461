"""Build a tiny causal language model from scratch, for tests, the offline demo and benchmarks.

A byte-level BPE tokenizer is trained on a few KB of text and a 2-layer Qwen2 (or Llama) model
with hidden size 64 is initialised with a fixed seed: seconds to build, real enough for TRL
training and lighteval scoring. `python -m evals.tiny_model OUT_DIR` builds one.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

from evals.fixture_data import EVAL_DIR, TRAIN_FILE

EOS = "<|endoftext|>"


def fixture_corpus() -> list[str]:
    """Text the tokenizer learns its merges from: the fixture task's prompts and answers."""
    lines = []
    for path in (TRAIN_FILE, EVAL_DIR / "test.jsonl"):
        for line in path.read_text().splitlines():
            lines.extend(str(v) for v in json.loads(line).values())
    return lines


def build_tiny_model(out_dir: str | Path, corpus: Iterable[str] | None = None, arch: str = "qwen2",
                     vocab_size: int = 512, hidden_size: int = 64, layers: int = 2,
                     seed: int = 0) -> Path:
    """Train a tokenizer on `corpus`, initialise a tiny model and save both to `out_dir`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(corpus if corpus is not None else fixture_corpus()), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=EOS,
                                        bos_token=None, model_max_length=256)
    tokenizer.save_pretrained(out)

    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                  max_position_embeddings=256, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=True)
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        raise ValueError(f"unknown arch {arch!r}: use 'qwen2' or 'llama'")
    model.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--arch", default="qwen2", choices=["qwen2", "llama"])
    args = parser.parse_args()
    print(build_tiny_model(args.out_dir, arch=args.arch))


if __name__ == "__main__":
    main()
