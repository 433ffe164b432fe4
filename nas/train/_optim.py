"""Optimizers that leave alone every element whose gradient is exactly zero in a step.

A super-net step trains one child, so the options the child did not run get no gradient. Whatever
DeepSpeed does with those gradients (ZeRO 1/2 keep them as zeros inside flat partitions, the
bf16/fp16 wrappers copy them into fp32 master gradients, a multi-rank all-reduce zero-fills them),
they reach the optimizer as exact zeros. ``MaskedAdamW`` and ``MaskedSGD`` update only the elements
whose gradient is non-zero -- parameter, weight decay, moments and step count -- and never write
the others, so an unused option is bit-identical before and after the step under every ZeRO stage,
world size and precision.

Adam's bias correction uses a per-element step count (the number of steps that element was
trained), so an option trained for the first time at step 1000 gets the bias correction of its own
first step, like ``torch.optim.SparseAdam`` ("lazy Adam"). For an element trained at every step the
arithmetic is the same as ``torch.optim.AdamW`` (``foreach=False``), bit for bit on CPU.

Caveat: an element whose true gradient is exactly 0 in a step (an embedding row of a token that is
not in the batch, a weight behind a dead ReLU) is skipped as well: no weight decay, no momentum for
it that step.

Built from the ds_config's ``"optimizer"`` section (``AdamW``/``Adam``, ``SGD``) and handed to
``deepspeed.initialize(optimizer=...)``; the scheduler section still applies (DeepSpeed's schedulers
drive ``param_groups[i]["lr"]`` of any optimizer).
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import torch

from .._errors import NasUsageError

# ds_config keys DeepSpeed uses to pick its own kernels; meaningless for ours, accepted and ignored.
_IGNORED = {"torch_adam", "fused", "foreach", "capturable", "differentiable", "set_grad_none",
            "fp32_optimizer_states"}
_ADAM_KEYS = {"lr", "betas", "eps", "weight_decay", "adam_w_mode", "amsgrad", "bias_correction"}
_SGD_KEYS = {"lr", "momentum", "dampening", "weight_decay", "nesterov"}
SUPPORTED_TYPES = ("AdamW", "Adam", "SGD")


def _usage(msg: str) -> NasUsageError:
    return NasUsageError(f"ds_config optimizer: {msg}")


def optimizer_spec(section: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """Check a ds_config ``"optimizer"`` section; returns (kind, constructor kwargs), where kind is
    ``"adamw"`` or ``"sgd"``. Raises ``NasUsageError`` for anything we cannot honour."""
    if not section:
        raise _usage('the DeepSpeed config has no "optimizer" section; add one '
                     '(e.g. {"type": "AdamW", "params": {"lr": 0.001}}, see ds_configs/)')
    if not isinstance(section, dict) or not isinstance(section.get("params", {}), dict):
        raise _usage('expected {"type": ..., "params": {...}}')
    kind = str(section.get("type", "")).lower()
    params = {k: v for k, v in section.get("params", {}).items() if k not in _IGNORED}
    if kind in ("adam", "adamw"):
        unknown = sorted(set(params) - _ADAM_KEYS)
        if unknown:
            raise _usage(f"unknown {section['type']} parameter(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_ADAM_KEYS))}")
        if params.pop("amsgrad", False):
            raise _usage("amsgrad is not supported; remove it")
        if not params.pop("bias_correction", True):
            raise _usage("bias_correction false is not supported; remove it")
        # DeepSpeed's "Adam" decouples weight decay (AdamW) unless adam_w_mode is false.
        decoupled = bool(params.pop("adam_w_mode", True)) or kind == "adamw"
        kwargs = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=decoupled)
        kwargs.update(params)
        kwargs["betas"] = tuple(float(b) for b in kwargs["betas"])
        if len(kwargs["betas"]) != 2 or not all(0.0 <= b < 1.0 for b in kwargs["betas"]):
            raise _usage(f"betas must be two numbers in [0, 1), got {section['params'].get('betas')}")
        _check_nonneg(kwargs, ("lr", "eps", "weight_decay"))
        return "adamw", kwargs
    if kind == "sgd":
        unknown = sorted(set(params) - _SGD_KEYS)
        if unknown:
            raise _usage(f"unknown SGD parameter(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_SGD_KEYS))}")
        kwargs = dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)
        kwargs.update(params)
        _check_nonneg(kwargs, ("lr", "momentum", "weight_decay"))
        if kwargs["nesterov"] and (kwargs["momentum"] <= 0 or kwargs["dampening"] != 0):
            raise _usage("nesterov needs momentum > 0 and dampening 0")
        return "sgd", kwargs
    raise _usage(f"type '{section.get('type')}' is not supported; choose from: "
                 f"{', '.join(SUPPORTED_TYPES)} (magic-nas builds the optimizer itself so that options "
                 "a step's child did not use stay untouched; see ds_configs/README.md)")


def _check_nonneg(kwargs: dict[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        try:
            kwargs[key] = float(kwargs[key])
        except (TypeError, ValueError):
            raise _usage(f"{key} must be a number, got {kwargs[key]!r}") from None
        if not kwargs[key] >= 0:
            raise _usage(f"{key} must be >= 0, got {kwargs[key]}")


def build_optimizer(section: dict[str, Any] | None, params) -> torch.optim.Optimizer:
    """The masked optimizer a ds_config's ``"optimizer"`` section describes."""
    kind, kwargs = optimizer_spec(section)
    cls = MaskedAdamW if kind == "adamw" else MaskedSGD
    return cls(params, **kwargs)


def split_ds_config(ds: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the config DeepSpeed gets, the optimizer section we build from): DeepSpeed gets no
    ``"optimizer"`` (we pass ours), is told our optimizer is fine under ZeRO, and casts buffers
    to the weights' precision."""
    engine = copy.deepcopy(ds)
    section = engine.pop("optimizer", None)
    if engine.get("zero_optimization", {}).get("stage", 0):
        engine["zero_allow_untested_optimizer"] = True
    # DeepSpeed casts only parameters to bf16/fp16 and keeps float buffers as they are, so
    # BatchNorm would meet bf16 weights with fp32 running statistics; cast buffers alike.
    for key, dtype in (("bf16", "bf16"), ("fp16", "fp16")):
        if engine.get(key, {}).get("enabled"):
            engine.setdefault("data_types", {}).setdefault("buffer_dtype", dtype)
    return engine, section


# ---- the update rules ----------------------------------------------------------------------------

def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1)


_CHUNK_ELEMENTS = 1 << 27  # a multi-tensor update concatenates at most this many elements at once


def _chunks(params: list[torch.Tensor]) -> Iterable[list[torch.Tensor]]:
    """Consecutive runs of same-device, same-dtype tensors, up to ``_CHUNK_ELEMENTS`` each (a
    larger tensor goes alone): what a multi-tensor update concatenates."""
    chunk, size = [], 0
    for p in params:
        key = (p.device, p.dtype)
        if chunk and (key != (chunk[0].device, chunk[0].dtype) or size + p.numel() > _CHUNK_ELEMENTS):
            yield chunk
            chunk, size = [], 0
        chunk.append(p)
        size += p.numel()
    if chunk:
        yield chunk


class _Selection:
    """The elements of one tensor that a step updates: all of them, or those with a non-zero grad.
    ``take`` gathers them (a view when all are updated), ``put`` writes results back to those
    elements only."""

    def __init__(self, grad: torch.Tensor):
        mask = _flat(grad) != 0
        self.all = bool(mask.all())
        self.none = not self.all and not bool(mask.any())
        self.index = None if self.all or self.none else mask.nonzero().squeeze(1)

    def take(self, t: torch.Tensor) -> torch.Tensor:
        return _flat(t) if self.all else _flat(t).index_select(0, self.index)

    def put(self, t: torch.Tensor, values: torch.Tensor) -> None:
        if not self.all:
            _flat(t).index_copy_(0, self.index, values)
        elif values.data_ptr() != t.data_ptr():  # a new tensor, not the view ``take`` gave
            _flat(t).copy_(values)


def _check_tensor(p: torch.Tensor, name: str) -> None:
    if p.grad.is_sparse:
        raise RuntimeError(f"{name} does not support sparse gradients")
    if not (p.is_contiguous() and p.grad.is_contiguous()):
        raise RuntimeError(f"{name} needs contiguous parameters and gradients")


class MaskedAdamW(torch.optim.Optimizer):
    """AdamW (or Adam with L2 decay, ``decoupled=False``) that skips zero-gradient elements, with
    per-element step counts for the bias correction (``state["step"]``, float32, the param's
    shape)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = True, multi_tensor: bool | None = None):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        decoupled=decoupled)
        super().__init__(params, defaults)
        self._tables: dict[tuple, dict[str, Any]] = {}
        # None: on for CUDA tensors, where a tensor-by-tensor step is bound by kernel launches and
        # host syncs (hundreds of tensors per super-net); off on CPU, where launches are cheap and
        # the concatenation would only add copies.
        self.multi_tensor = multi_tensor

    def _lookup(self, beta1: float, beta2: float, lr: float, n: int, like: torch.Tensor):
        """Per step count k in 0..n-1 (index 0 is a harmless filler): ``-lr / (1 - beta1**k)`` and
        ``(1 - beta2**k) ** 0.5`` in ``like``'s dtype, computed as torch's AdamW computes its
        scalars (Python floats, one rounding to the parameter dtype), cached per lr."""
        key = (beta1, beta2, like.device, like.dtype)
        entry = self._tables.get(key)
        if entry is None or entry["n"] < n:
            size = max(n, 2 * entry["n"] if entry else 64)
            bc1, bc2_sqrt = [1.0], [1.0]
            for k in range(1, size):
                step = float(k)
                bc1.append(1 - beta1**step)
                bc2_sqrt.append((1 - beta2**step) ** 0.5)
            entry = self._tables[key] = {
                "n": size, "lr": None,
                "bc1": torch.tensor(bc1, dtype=torch.float64, device=like.device),
                "bc2_sqrt": torch.tensor(bc2_sqrt, dtype=torch.float64, device=like.device).to(like.dtype),
            }
        if entry["lr"] != lr:  # (a Python float divided by a tensor would go through a reciprocal)
            neg = torch.full_like(entry["bc1"], lr).div_(entry["bc1"]).neg_()
            entry["neg_step_size"] = neg.to(like.dtype)
            entry["lr"] = lr
        return entry["neg_step_size"], entry["bc2_sqrt"]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                _check_tensor(p, "MaskedAdamW")
                state = self.state[p]
                if not state:  # (even if nothing is updated now: DeepSpeed links states after step 1)
                    state["step"] = torch.zeros_like(p, dtype=torch.float32,
                                                     memory_format=torch.contiguous_format)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                if state["step"].device != p.device:  # torch keeps "step" where the checkpoint had it
                    state["step"] = state["step"].to(p.device)
                params.append(p)
            multi = self.multi_tensor if self.multi_tensor is not None else any(p.is_cuda for p in params)
            for chunk in (_chunks(params) if multi else ([p] for p in params)):
                self._update(group, chunk)
        return loss

    def _update(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        """One masked AdamW update of ``params`` (same device and dtype), as one flat tensor: the
        element-wise arithmetic is the same whether a tensor is updated alone or concatenated
        with others, so both give bit-identical results; concatenating trades copies for far
        fewer kernel launches and host syncs."""
        state = [self.state[p] for p in params]
        flat = len(params) > 1

        def cat(tensors):
            return torch.cat([t.reshape(-1) for t in tensors]) if flat else tensors[0]

        grads = cat([p.grad for p in params])
        sel = _Selection(grads)
        if sel.none:
            return
        values = {"param": cat(params), **{k: cat([s[k] for s in state])
                                           for k in ("exp_avg", "exp_avg_sq", "step")}}
        lr, eps, wd = float(group["lr"]), group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        grad = sel.take(grads)
        param = sel.take(values["param"])
        exp_avg, exp_avg_sq = sel.take(values["exp_avg"]), sel.take(values["exp_avg_sq"])
        count = sel.take(values["step"])
        count.add_(1)
        if wd != 0:
            if group["decoupled"]:
                param.mul_(1 - lr * wd)
            else:
                grad = grad.add(param, alpha=wd)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        # Per element: step_size = lr / (1 - beta1**k), bc2_sqrt = (1 - beta2**k) ** 0.5,
        # looked up by the element's own step count k.
        k = count.long()
        neg_step_size, bc2_sqrt = self._lookup(beta1, beta2, lr, int(k.max()) + 1, param)
        denom = exp_avg_sq.sqrt().div_(bc2_sqrt.index_select(0, k)).add_(eps)
        # = param.addcdiv_(exp_avg, denom, value=-step_size), element by element
        param.add_(exp_avg.mul(neg_step_size.index_select(0, k)).div_(denom))
        for name, new in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq), ("step", count),
                          ("param", param)):
            sel.put(values[name], new)
        if flat:  # back into the tensors (every element: the skipped ones are copied unchanged)
            sizes = [p.numel() for p in params]
            for name, flat_values in values.items():
                targets = params if name == "param" else [s[name] for s in state]
                torch._foreach_copy_(targets, [v.view_as(t) for v, t in zip(flat_values.split(sizes), targets)])


class MaskedSGD(torch.optim.Optimizer):
    """SGD (momentum, dampening, Nesterov, L2 weight decay as in ``torch.optim.SGD``) that skips
    zero-gradient elements. With ``dampening`` > 0 a per-element step count (``state["step"]``)
    marks the elements whose momentum buffer starts at their first trained step."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, dampening = float(group["lr"]), group["momentum"], group["dampening"]
            wd, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                _check_tensor(p, "MaskedSGD")
                state = self.state[p]
                if momentum != 0 and not state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    if dampening != 0:
                        state["step"] = torch.zeros_like(p, dtype=torch.float32,
                                                         memory_format=torch.contiguous_format)
                sel = _Selection(p.grad)
                if sel.none:
                    continue
                grad, param = sel.take(p.grad), sel.take(p)
                if wd != 0:
                    grad = grad.add(param, alpha=wd)
                if momentum != 0:
                    buf = sel.take(state["momentum_buffer"])
                    if dampening != 0:
                        if state["step"].device != p.device:
                            state["step"] = state["step"].to(p.device)
                        count = sel.take(state["step"])
                        first = count == 0
                        buf = torch.where(first, grad, buf.mul(momentum).add_(grad, alpha=1 - dampening))
                        sel.put(state["step"], count.add_(1))
                    else:  # a zero buffer times momentum plus grad is exactly grad: torch's first step
                        buf.mul_(momentum).add_(grad)
                    sel.put(state["momentum_buffer"], buf)
                    grad = grad.add(buf, alpha=momentum) if nesterov else buf
                param.add_(grad, alpha=-lr)
                sel.put(p, param)
        return loss
