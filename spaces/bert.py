"""The ``bert`` space: a post-LN BERT encoder whose every sub-layer is searched (NAS-BERT style).

Each layer has a token-mixing slot (``mha{heads}``, separable ``conv{k}``, ``id``) and a
feed-forward slot (``ffn{inner}``, ``id``); slots run mix0, ffn0, mix1, ffn1, ... Every non-identity
option owns its residual LayerNorm and computes ``LN(x + op(x))``, so ``id`` skips the sub-layer.
Options live in separate modules (single-path one-shot super-net), which is what lets
:func:`load_hf_bert` start a super-net or a child from Hugging Face ``BertModel`` weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas import Child, Choice, NasUsageError, SearchSpace, Slot, register_space


@dataclass(frozen=True)
class BertPreset:
    hidden: int
    layers: int
    heads: tuple[int, ...]  # head counts of the attention options
    ffn: tuple[int, ...]  # inner sizes of the feed-forward options
    kernels: tuple[int, ...]  # kernel sizes of the separable-convolution options
    max_positions: int
    vocab_size: int
    type_vocab_size: int
    num_classes: int
    seq_len: int  # sequence length of example_input (MACs)
    dropout: float
    layer_norm_eps: float
    reference_heads: int  # the named arch ``bert-base`` uses these in every layer
    reference_ffn: int


PRESETS = {
    "base": BertPreset(768, 12, (4, 8, 12), (768, 1536, 3072), (3, 5, 7), 512, 30522, 2, 2, 128,
                       0.1, 1e-12, 12, 3072),
    "tiny": BertPreset(64, 4, (2, 4), (128, 256), (3, 5, 7), 128, 128, 2, 2, 64, 0.1, 1e-12, 4, 256),
}


class Skip(nn.Module):
    """The ``id`` option: the sub-layer is skipped (no LayerNorm either)."""

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        return x


class SelfAttention(nn.Module):
    """BERT multi-head self-attention sub-layer: ``LN(x + dropout(out(attn(x))))``."""

    def __init__(self, hidden: int, heads: int, dropout: float, eps: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(hidden, hidden) for _ in range(4))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, -1).transpose(1, 2)
                   for proj in (self.query, self.key, self.value))
        # Explicit matmuls rather than SDPA: torch's flop counter does not count CPU SDPA kernels.
        scores = q @ k.transpose(-1, -2) / math.sqrt(h // self.heads) + additive_mask
        context = self.dropout(scores.softmax(-1)) @ v
        return self.norm(x + self.dropout(self.out(context.transpose(1, 2).reshape(b, t, h))))


class SeparableConv(nn.Module):
    """Depthwise conv over the sequence ('same' padding), GELU, pointwise Linear; padding zeroed."""

    def __init__(self, hidden: int, kernel: int, dropout: float, eps: float):
        super().__init__()
        self.depthwise = nn.Conv1d(hidden, hidden, kernel, padding="same", groups=hidden)
        self.pointwise = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.depthwise((x * mask.unsqueeze(-1)).transpose(1, 2)).transpose(1, 2)
        return self.norm(x + self.dropout(self.pointwise(F.gelu(y))))


class FeedForward(nn.Module):
    """BERT feed-forward sub-layer: ``LN(x + dropout(out(gelu(inner(x)))))``."""

    def __init__(self, hidden: int, inner: int, dropout: float, eps: float):
        super().__init__()
        self.inner = nn.Linear(hidden, inner)
        self.out = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.out(F.gelu(self.inner(x)))))


class Embeddings(nn.Module):
    """Word + position + token-type embeddings, LayerNorm, dropout (as in BERT)."""

    def __init__(self, c: BertPreset):
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.hidden, padding_idx=0)
        self.position = nn.Embedding(c.max_positions, c.hidden)
        self.token_type = nn.Embedding(c.type_vocab_size, c.hidden)
        self.norm = nn.LayerNorm(c.hidden, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


class BertSupernet(nn.Module):
    """Embeddings, L layers of (mix, ffn) :class:`Choice` slots, pooler (backbone), task head."""

    def __init__(self, c: BertPreset, options: list[dict[str, nn.Module]], head: nn.Module,
                 num_outputs: int, head_type: str):
        super().__init__()
        self.config = c
        self.embeddings = Embeddings(c)
        self.layers = nn.ModuleList(
            nn.ModuleDict({"mix": Choice(options[2 * i]), "ffn": Choice(options[2 * i + 1])})
            for i in range(c.layers)
        )
        self.pooler = nn.Linear(c.hidden, c.hidden)
        self.head, self.num_outputs, self.head_type = head, num_outputs, head_type
        self.apply(_bert_init)

    def _encode(self, input_ids, arch, attention_mask, token_type_ids):
        if len(arch) != 2 * len(self.layers):
            raise NasUsageError(f"arch has {len(arch)} tokens but the net has {2 * len(self.layers)} "
                                "slots; pass an arch parsed by the space (space.parse)")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        mask = mask.to(self.pooler.weight.dtype)
        additive = (1.0 - mask[:, None, None, :]) * torch.finfo(mask.dtype).min  # HF-style key mask
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        x = self.embeddings(input_ids, types)
        hiddens = []
        for layer, mix, ffn in zip(self.layers, arch[0::2], arch[1::2]):
            x = layer["ffn"](layer["mix"](x, mix, additive, mask), ffn)
            hiddens.append(x)
        return x, hiddens

    def features(self, input_ids, arch, attention_mask=None, token_type_ids=None):
        """(sequence output [B,T,H], pooled first token [B,H], per-layer hidden states)."""
        x, hiddens = self._encode(input_ids, arch, attention_mask, token_type_ids)
        return x, torch.tanh(self.pooler(x[:, 0])), hiddens

    def forward(self, input_ids, arch, return_hidden=False, attention_mask=None, token_type_ids=None):
        if self.head_type == "mlm":
            x, hiddens = self._encode(input_ids, arch, attention_mask, token_type_ids)
            logits = self.head(x)
        else:
            _, pooled, hiddens = self.features(input_ids, arch, attention_mask, token_type_ids)
            logits = self.head(pooled)
        return (logits, hiddens) if return_hidden else logits


def _bert_init(module: nn.Module) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, the padding row zero."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        elif module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])


@register_space("bert")
class BertSpace(SearchSpace):
    """BERT encoder: per layer attention heads / separable conv / skip, and FFN size / skip."""

    presets = PRESETS
    default_task = "synthetic-text"
    has_batchnorm = False
    # Measured (benchmarks/bert_plateau.py, docs/reproduction.md): at AdamW lr 0.002, the generic
    # default, uniformly sampled tiny super-nets never left the synthetic-text loss plateau in
    # 1,500 steps (2 of 2 seeds); at 0.0005 every run of every mode did.
    default_ds_config = {"optimizer": {"type": "AdamW", "params": {
        "lr": 5e-4, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "torch_adam": True}}}
    head_types = ("classification", "mlm")

    def __init__(self, preset: str = "tiny", **overrides: Any):
        super().__init__(preset, **overrides)
        c = self.config
        bad_heads = [h for h in c.heads if c.hidden % h]
        problems = [
            bad_heads and f"hidden {c.hidden} is not divisible by head count(s) {bad_heads}",
            c.reference_heads not in c.heads
            and f"reference_heads {c.reference_heads} not in heads {c.heads}",
            c.reference_ffn not in c.ffn and f"reference_ffn {c.reference_ffn} not in ffn {c.ffn}",
            c.seq_len > c.max_positions and f"seq_len {c.seq_len} exceeds max_positions {c.max_positions}",
        ]
        problems = [p for p in problems if p]
        if problems:
            raise NasUsageError(f"invalid bert config: {'; '.join(problems)}; adjust these overrides")

    def _mix_options(self) -> tuple[str, ...]:
        c = self.config
        return (*(f"mha{h}" for h in c.heads), *(f"conv{k}" for k in c.kernels), "id")

    def _make_slots(self) -> list[Slot]:
        mix, ffn = self._mix_options(), (*(f"ffn{n}" for n in self.config.ffn), "id")
        return [slot for i in range(self.config.layers)
                for slot in (Slot(f"mix{i}", mix), Slot(f"ffn{i}", ffn))]

    def named_archs(self) -> dict[str, str]:
        c = self.config
        return {"bert-base": ",".join([f"mha{c.reference_heads}", f"ffn{c.reference_ffn}"] * c.layers)}

    def _make_option(self, token: str) -> nn.Module:
        c = self.config
        kind, size = re.fullmatch(r"([a-z]+)(\d*)", token).groups()
        if kind == "id":
            return Skip()
        make = {"mha": SelfAttention, "conv": SeparableConv, "ffn": FeedForward}[kind]
        return make(c.hidden, int(size), c.dropout, c.layer_norm_eps)

    def _build(self, only, num_outputs, head):
        c = self.config
        if head == "classification":
            num_outputs = c.num_classes if num_outputs is None else num_outputs
            head_module = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.hidden, num_outputs))
        elif head == "mlm":
            if num_outputs not in (None, c.vocab_size):
                raise NasUsageError(f"an mlm head predicts the vocabulary ({c.vocab_size} tokens), not "
                                    f"{num_outputs} outputs; leave num_outputs unset or set vocab_size")
            num_outputs = c.vocab_size
            head_module = nn.Sequential(nn.Linear(c.hidden, c.hidden), nn.GELU(),
                                        nn.LayerNorm(c.hidden, eps=c.layer_norm_eps),
                                        nn.Linear(c.hidden, c.vocab_size))
        else:
            raise NasUsageError(f"unknown head '{head}' for space bert; choose from: "
                                f"{', '.join(self.head_types)}")
        options = [{t: self._make_option(t) for t in (slot.options if only is None else (token,))}
                   for slot, token in zip(self.slots, only or [None] * len(self.slots))]
        return BertSupernet(c, options, head_module, num_outputs, head)

    def activation_modules(self, net: nn.Module) -> list[nn.Module]:
        """GELU is applied functionally here, so the pattern is read before it: the FFN's inner
        Linear and the separable convolution's depthwise conv (GELU(x) > 0 exactly when x > 0),
        plus any GELU module (the MLM head's)."""
        sites: list[nn.Module] = [m for m in net.modules() if isinstance(m, nn.GELU)]
        for m in net.modules():
            if isinstance(m, FeedForward):
                sites.append(m.inner)
            elif isinstance(m, SeparableConv):
                sites.append(m.depthwise)
        return sites

    def input_embedding(self, net: nn.Module) -> nn.Module | None:
        return net.embeddings

    def example_input(self, batch_size: int = 1) -> tuple[tuple, dict]:
        c = self.config
        generator = torch.Generator().manual_seed(0)
        input_ids = torch.randint(1, c.vocab_size, (batch_size, c.seq_len), generator=generator)
        kwargs = {"attention_mask": torch.ones_like(input_ids), "token_type_ids": torch.zeros_like(input_ids)}
        return (input_ids,), kwargs


# ---- Hugging Face BertModel weights -------------------------------------------------------------
_HF_SHARED = {"embeddings.word": "embeddings.word_embeddings",
              "embeddings.position": "embeddings.position_embeddings",
              "embeddings.token_type": "embeddings.token_type_embeddings",
              "embeddings.norm": "embeddings.LayerNorm", "pooler": "pooler.dense"}
_HF_MHA = {"query": "attention.self.query", "key": "attention.self.key",
           "value": "attention.self.value", "out": "attention.output.dense",
           "norm": "attention.output.LayerNorm"}
_HF_FFN = {"inner": "intermediate.dense", "out": "output.dense", "norm": "output.LayerNorm"}
_OPTION_KEY = re.compile(r"layers\.(\d+)\.(mix|ffn)\.ops\.(\w+?)\.(\w+)")


def load_hf_bert(module: nn.Module, hf_state_dict: dict[str, torch.Tensor],
                 num_attention_heads: int | None = None, strict: bool = True) -> list[str]:
    """Copy a Hugging Face ``BertModel`` state dict into a bert super-net or child (in place).

    Embeddings, pooler and, in every layer, the ``mha{num_attention_heads}`` and
    ``ffn{intermediate_size}`` options are filled; other options and the task head are left as
    they are. ``num_attention_heads`` (the HF config's; the state dict cannot tell) defaults to the
    space's ``reference_heads``; the FFN size is read from the weights. A ``bert.`` key prefix (HF
    task models) is stripped. With ``strict=False`` layers lacking these options are skipped
    instead of raising. Returns our keys that were loaded.
    """
    net = module.net if isinstance(module, Child) else module
    if not isinstance(net, BertSupernet):
        raise NasUsageError(f"load_hf_bert needs a bert super-net or child, got {type(module).__name__}; "
                            "build one with get_space('bert', ...).build_supernet() or .build_child()")
    hf = {k.removeprefix("bert."): v for k, v in hf_state_dict.items() if not k.endswith("position_ids")}
    hf_layers = {int(m[1]) for k in hf if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}
    if "encoder.layer.0.intermediate.dense.weight" not in hf or len(hf_layers) != len(net.layers):
        raise NasUsageError(f"the state dict has {len(hf_layers)} BertModel encoder layers but the net "
                            f"has {len(net.layers)}; pass BertModel(...).state_dict() of the same depth "
                            "(or override the space's 'layers')")
    mha = f"mha{num_attention_heads or net.config.reference_heads}"
    ffn = f"ffn{hf['encoder.layer.0.intermediate.dense.weight'].shape[0]}"
    for i, layer in enumerate(net.layers):
        for slot, token in (("mix", mha), ("ffn", ffn)):
            if strict and token not in layer[slot].ops:
                raise NasUsageError(
                    f"layer {i} ({slot}{i}) has no option '{token}' (has: {', '.join(layer[slot].ops)}); "
                    "use a space whose heads/ffn options include it and a super-net or a child whose "
                    "layers all use it (e.g. the named arch 'bert-base'), or pass strict=False")
    mapped = {}
    for key in net.state_dict():
        module_name, _, param = key.rpartition(".")
        if module_name in _HF_SHARED:
            mapped[key] = f"{_HF_SHARED[module_name]}.{param}"
        elif (m := _OPTION_KEY.fullmatch(module_name)) and m[3] in (mha, ffn):
            table = _HF_MHA if m[2] == "mix" else _HF_FFN
            mapped[key] = f"encoder.layer.{m[1]}.{table[m[4]]}.{param}"
    target = net.state_dict()
    for ours, theirs in mapped.items():
        if theirs not in hf or hf[theirs].shape != target[ours].shape:
            found = "missing" if theirs not in hf else f"shape {tuple(hf[theirs].shape)}"
            raise NasUsageError(f"BertModel weight '{theirs}' is {found} but '{ours}' needs "
                                f"{tuple(target[ours].shape)}; build the space with matching hidden, "
                                "vocab_size, max_positions and type_vocab_size overrides")
    with torch.no_grad():
        for ours, theirs in mapped.items():
            target[ours].copy_(hf[theirs])
    return sorted(mapped)
