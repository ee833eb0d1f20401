"""Stage `tokenizer`: a `transformers.CLIPTokenizer` for the caption grammar, one token per word.

The vocabulary is CLIP's byte-level alphabet (256 symbols, each also with the end-of-word marker
`</w>`), plus BPE merges crafted from the grammar's words: each word is merged left to right into a
single token. Any text still tokenizes (rare words fall back to characters); every caption of the
grammar fits far inside 77 tokens. Saved as vocab.json + merges.txt, loadable by
`CLIPTokenizer.from_pretrained`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from flexip_miniworld.identity import CLASSES
from flexip_miniworld.scene import BACKGROUNDS, COLOURS, PATTERN_WORDS, PLACEMENTS, SHAPES, SIZES, STYLES

SPECIAL = ("<|startoftext|>", "<|endoftext|>")


def grammar_words() -> list[str]:
    phrases = ["a", ","] + list(CLASSES) + list(BACKGROUNDS.values()) + list(PLACEMENTS.values())
    phrases += list(SIZES) + list(SHAPES) + list(COLOURS) + list(PATTERN_WORDS) + list(STYLES)
    words = []
    for phrase in phrases:
        for word in re.findall(r"[a-z]+|[^\sa-z]", phrase.lower()):
            if word not in words:
                words.append(word)
    return words


def _byte_alphabet() -> list[str]:
    """GPT-2/CLIP's reversible byte → printable-character table, in CLIP's vocabulary order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def _chain(word: str) -> list[tuple[str, str]]:
    """Merges that join `word` left to right: (c1, c2), (c1c2, c3), ..., (c1..cn-1, cn</w>)."""
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    merges, current = [], symbols[0]
    for symbol in symbols[1:]:
        merges.append((current, symbol))
        current += symbol
    return merges


def _write(folder: Path, merges: list[tuple[str, str]]) -> None:
    alphabet = _byte_alphabet()
    vocab = alphabet + [symbol + "</w>" for symbol in alphabet]
    for a, b in merges:
        if a + b not in vocab:
            vocab.append(a + b)
    vocab += list(SPECIAL)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")


def load_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer(
        str(Path(folder) / "vocab.json"),
        str(Path(folder) / "merges.txt"),
        model_max_length=77,
        bos_token=SPECIAL[0],
        eos_token=SPECIAL[1],
        pad_token=SPECIAL[1],
        unk_token=SPECIAL[1],
    )


def build_tokenizer(folder: Path, log=print) -> dict:
    """Write the tokenizer to `folder`; every grammar word must come out as one token (checked)."""
    folder = Path(folder)
    words = sorted(grammar_words(), key=len)
    order = list(words)
    for _ in range(len(words) + 1):
        merges: list[tuple[str, str]] = []
        for word in order:
            for merge in _chain(word):
                if merge not in merges:
                    merges.append(merge)
        _write(folder, merges)
        tokenizer = load_tokenizer(folder)
        broken = [w for w in words if len(tokenizer(w, add_special_tokens=False).input_ids) != 1]
        if not broken:
            break
        order = broken + [w for w in order if w not in broken]  # their merges first (lower rank)
    else:
        raise RuntimeError(f"could not make these words single tokens: {broken}")
    tokenizer.save_pretrained(folder)
    log(f"[tokenizer] {len(tokenizer)} tokens, {len(merges)} merges, {len(words)} words → {folder}")
    return {"output": str(folder), "vocab_size": len(tokenizer), "words": len(words)}
