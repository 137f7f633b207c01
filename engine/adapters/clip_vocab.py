"""CLIP's tokenizer from the merges bundled with the engine, so single files load offline.

A single-file checkpoint carries no tokenizer, and every SD/SDXL text encoder uses CLIP's BPE
vocabulary. It is rebuilt the way CLIP itself builds it: the 256 byte symbols, the same with the
end-of-word mark, one token per merge, then the two special tokens (49,408 in all).
"""
from __future__ import annotations

import gzip
from pathlib import Path

MERGES_FILE = Path(__file__).parent / "clip_tokenizer" / "merges.txt.gz"
VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def byte_symbols() -> list[str]:
    """CLIP's (and GPT-2's) reversible byte → printable character table, in vocabulary order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer(pad_token: str = EOS, model_max_length: int = 77):
    """SD 1.x and SDXL's first tokenizer pad with the end token; SD 2.x and SDXL's second with "!"."""
    from transformers import CLIPTokenizer

    with gzip.open(MERGES_FILE, "rt", encoding="utf-8") as f:
        merges = f.read().split("\n")[1:VOCAB_SIZE - 512 - 2 + 1]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + \
        [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"bundled CLIP merges give {len(vocab)} tokens, expected {VOCAB_SIZE}")
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges],
                         pad_token=pad_token, model_max_length=model_max_length)
