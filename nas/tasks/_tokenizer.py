"""Text encoders for tasks that read raw text: a WordPiece trained offline, or a Hugging Face one.

Without a pretrained tokenizer we train a BERT-style WordPiece (lowercase, BERT normaliser and
pre-tokenizer, ``[CLS] a [SEP] b [SEP]`` template with segment ids) on the training split with the
``tokenizers`` library, and cache it as ``run_dir/tokenizer/tokenizer.json`` so a resumed run reuses
the exact vocabulary. ``[PAD]`` is id 0, the padding row of the bert space's embeddings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from .._errors import NasUsageError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class Encoder:
    """Encodes sentences or sentence pairs to (input ids, token type ids), truncated to ``max_len``."""

    pad_id: int = 0
    vocab_size: int = 0
    description: dict[str, Any] = {}

    def encode(self, a: Sequence[str], b: Sequence[str] | None, max_len: int) -> tuple[list, list]:
        raise NotImplementedError


class WordPieceEncoder(Encoder):
    def __init__(self, tokenizer, source: str):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.token_to_id("[PAD]")
        if self.pad_id is None:
            raise ValueError("the tokenizer has no [PAD] token")
        self.vocab_size = tokenizer.get_vocab_size()
        self.description = {"kind": "wordpiece", "vocab_size": self.vocab_size, "source": source}

    def encode(self, a, b, max_len):
        self.tokenizer.enable_truncation(max_length=max_len, strategy="longest_first")
        batch = list(a) if b is None else list(zip(a, b))
        encodings = self.tokenizer.encode_batch(batch)
        return [e.ids for e in encodings], [e.type_ids for e in encodings]


def pretrained_encoder(name_or_path: str) -> Encoder:
    """A ``tokenizer.json`` file (e.g. another run's WordPiece, to share its vocabulary) or a
    Hugging Face tokenizer name or folder."""
    if str(name_or_path).endswith(".json") and Path(name_or_path).is_file():
        from tokenizers import Tokenizer

        try:
            return WordPieceEncoder(Tokenizer.from_file(str(name_or_path)), str(name_or_path))
        except Exception as exc:
            raise NasUsageError(f"cannot read tokenizer {name_or_path} ({first_line(exc)}); pass a "
                                "tokenizers JSON file with a [PAD] token, or a Hugging Face name") from None
    return HuggingFaceEncoder(name_or_path)


class HuggingFaceEncoder(Encoder):
    def __init__(self, name_or_path: str):
        try:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        except Exception as exc:  # hub offline, bad path, not a tokenizer...
            raise NasUsageError(
                f"could not load tokenizer '{name_or_path}' ({type(exc).__name__}: "
                f"{first_line(exc)}); pass a local folder holding tokenizer files (e.g. saved with "
                "save_pretrained) or omit --tokenizer to train a WordPiece on the training data"
            ) from None
        if self.tokenizer.pad_token_id is None:
            raise NasUsageError(f"tokenizer '{name_or_path}' has no padding token; use a tokenizer "
                                "with a pad token (e.g. a BERT one) or omit --tokenizer")
        self.pad_id = self.tokenizer.pad_token_id
        self.vocab_size = len(self.tokenizer)
        self.description = {"kind": "pretrained", "name": name_or_path, "vocab_size": self.vocab_size}

    def encode(self, a, b, max_len):
        out = self.tokenizer(list(a), None if b is None else list(b), truncation=True,
                             max_length=max_len, return_token_type_ids=True)
        return out["input_ids"], out["token_type_ids"]


def train_wordpiece(texts: Sequence[str], vocab_size: int, lowercase: bool = True):
    """A BERT-style WordPiece ``tokenizers.Tokenizer`` trained on ``texts``, deterministically.

    The trainer numbers continuation pieces (``##x``) in hash-map order, which changes merges on
    ties from run to run (huggingface/tokenizers#1794). Registering every ``##x`` up front, in
    sorted order, fixes their ids; they are then turned back into ordinary vocabulary entries.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    chars = {c for raw in set("".join(texts)) for c in normalizer.normalize_str(raw) if not c.isspace()}
    pieces = [f"##{c}" for c in sorted(chars)]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + pieces,
                                        show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    config = json.loads(tokenizer.to_str())
    config["added_tokens"] = [t for t in config["added_tokens"] if t["content"] in SPECIAL_TOKENS]
    tokenizer = Tokenizer.from_str(json.dumps(config))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tokenizer


def wordpiece_encoder(run_dir: Path | None, texts: Sequence[str], vocab_size: int, fingerprint: dict) -> Encoder:
    """The cached WordPiece of ``run_dir`` when present (same ``fingerprint``), else a new one."""
    from tokenizers import Tokenizer

    folder = run_dir / "tokenizer" if run_dir is not None else None
    path = folder / "tokenizer.json" if folder else None
    meta_path = folder / "trained_for.json" if folder else None
    if path is not None and path.exists():
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta != fingerprint:
                raise NasUsageError(
                    f"{path} was trained for {meta}, not {fingerprint}; use a new run directory "
                    "(or delete that tokenizer folder to retrain)"
                )
        try:
            return WordPieceEncoder(Tokenizer.from_file(str(path)), str(path))
        except Exception as exc:
            raise NasUsageError(f"cannot read tokenizer {path} ({first_line(exc)}); delete it to retrain") from None
    tokenizer = train_wordpiece(texts, vocab_size)
    if path is None:
        return WordPieceEncoder(tokenizer, "trained in memory")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tokenizer.save(str(tmp))
    os.replace(tmp, path)
    meta_path.write_text(json.dumps(fingerprint, indent=1) + "\n")
    return WordPieceEncoder(tokenizer, str(path))


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]
