"""The bert search space: arch algebra, super-net/child equivalence, costs, HF BertModel parity."""

from __future__ import annotations

import json
import random

import pytest
import torch

from nas import NasUsageError, get_space, list_spaces
from nas.cli import main as cli_main
from nas.spaces.bert import load_hf_bert

transformers = pytest.importorskip("transformers")


def _inputs(space, batch=3, seed=0):
    """Token ids with padding at the end of some rows and two segments."""
    c = space.config
    g = torch.Generator().manual_seed(seed)
    t = min(c.seq_len, 24)
    ids = torch.randint(1, c.vocab_size, (batch, t), generator=g)
    mask = torch.ones_like(ids)
    mask[1, t - 7:] = 0
    mask[-1, t // 2:] = 0
    types = torch.zeros_like(ids)
    types[:, t // 3:] = 1
    return ids, {"attention_mask": mask, "token_type_ids": types}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run ~100x slower with 2 intra-op threads on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def space():
    return get_space("bert", preset="tiny")


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    return space.build_supernet()


@pytest.fixture(scope="module")
def archs(space):
    rng = random.Random(0)
    fixed = [space.parse("bert-base"), ("id",) * len(space.slots)]
    return fixed + [space.sample(rng) for _ in range(22)]


def test_registered_with_metadata():
    cls = type(get_space("bert"))
    assert "bert" in list_spaces()
    assert cls.default_task == "synthetic-text" and cls.has_batchnorm is False
    assert cls.__doc__.strip().splitlines()[0]


def test_slots_tokens_and_size(space):
    names = [s.name for s in space.slots]
    assert names == ["mix0", "ffn0", "mix1", "ffn1", "mix2", "ffn2", "mix3", "ffn3"]
    assert space.slots[0].options == ("mha2", "mha4", "conv3", "conv5", "conv7", "id")
    assert space.slots[1].options == ("ffn128", "ffn256", "id")
    assert space.size == (6 * 3) ** 4
    assert space.parse("bert-base") == ("mha4", "ffn256") * 4
    base = get_space("bert", preset="base")
    assert len(base.slots) == 24 and base.slots[0].options[:3] == ("mha4", "mha8", "mha12")
    assert base.parse("bert-base") == ("mha12", "ffn3072") * 12


def test_parse_encode_round_trip(space):
    rng = random.Random(1)
    for _ in range(200):
        arch = space.sample(rng)
        text = space.encode(arch)
        assert space.parse(text) == arch
        assert space.parse(text.replace(",", " , ")) == arch


@pytest.mark.parametrize("bad", [
    "", "mha4,ffn256", ",".join(["mha4", "ffn256"] * 5),
    ",".join(["mha3", "ffn256"] + ["mha4", "ffn256"] * 3),  # no such head count
    ",".join(["ffn256", "ffn256"] + ["mha4", "ffn256"] * 3),  # ffn token in a mix slot
    ",".join(["mha4", "conv3"] + ["mha4", "ffn256"] * 3),  # conv token in an ffn slot
    "bert-large",
])
def test_malformed_archs_raise_usage_error(space, bad):
    with pytest.raises(NasUsageError):
        space.parse(bad)


def test_mutate_and_distance(space):
    rng = random.Random(2)
    for k in (1, 2, 5, 8):
        for _ in range(20):
            arch = space.sample(rng)
            mutated = space.mutate(arch, rng, k=k)
            assert space.distance(arch, mutated) == k
            assert space.parse(mutated) == mutated
    assert space.distance("bert-base", ("id",) * 8) == 8


def test_bad_config_and_head_raise_usage_error(space):
    with pytest.raises(NasUsageError, match="divisible"):
        get_space("bert", preset="tiny", heads=(3, 4))
    with pytest.raises(NasUsageError, match="reference_ffn"):
        get_space("bert", preset="tiny", ffn=(128,))
    with pytest.raises(NasUsageError, match="max_positions"):
        get_space("bert", preset="tiny", max_positions=32)
    with pytest.raises(NasUsageError, match="choose from"):
        space.build_child("bert-base", head="seq2seq")


def test_overrides_are_honoured():
    space = get_space("bert", preset="tiny", vocab_size=50, max_positions=32, seq_len=16,
                      num_classes=3, type_vocab_size=3, layers=2)
    assert len(space.slots) == 4
    net = space.build_supernet()
    assert net.embeddings.word.weight.shape[0] == 50
    assert net.embeddings.position.weight.shape[0] == 32
    assert net.embeddings.token_type.weight.shape[0] == 3
    (ids,), kwargs = space.example_input(2)
    assert ids.shape == (2, 16) and int(ids.max()) < 50
    assert net(ids, arch=space.sample(random.Random(0)), **kwargs).shape == (2, 3)
    mlm = space.build_child("bert-base", head="mlm")
    assert mlm.net.num_outputs == 50
    assert mlm(ids, **kwargs).shape == (2, 16, 50)


@pytest.mark.parametrize("train", [False, True])
def test_child_matches_supernet(space, supernet, archs, train):
    ids, kwargs = _inputs(space)
    supernet.train(train)
    try:
        for arch in archs:
            child = space.child(supernet, arch)
            assert child.training == train
            torch.manual_seed(123)
            logits, hiddens = supernet(ids, arch=arch, return_hidden=True, **kwargs)
            torch.manual_seed(123)
            child_logits, child_hiddens = child(ids, return_hidden=True, **kwargs)
            torch.manual_seed(123)
            plain = child(ids, **kwargs)
            assert (logits - child_logits).abs().max() < 1e-5, arch
            assert (plain - child_logits).abs().max() < 1e-5, arch
            assert len(hiddens) == len(child_hiddens) == space.config.layers
            for h, ch in zip(hiddens, child_hiddens):
                assert h.shape == (*ids.shape, space.config.hidden)
                assert (h - ch).abs().max() < 1e-5, arch
    finally:
        supernet.eval()


def test_dropout_is_active_in_train_mode(space, supernet):
    ids, kwargs = _inputs(space)
    supernet.train()
    try:
        arch = space.parse("bert-base")
        a, b = supernet(ids, arch=arch, **kwargs), supernet(ids, arch=arch, **kwargs)
    finally:
        supernet.eval()
    assert (a - b).abs().max() > 1e-4


def test_child_holds_only_its_options(space, supernet, archs):
    super_keys = set(supernet.state_dict())
    for arch in archs[:6]:
        child = space.child(supernet, arch)
        keys = set(child.net.state_dict())
        assert keys < super_keys
        assert sum(p.numel() for p in child.parameters()) < sum(p.numel() for p in supernet.parameters())
        for i in range(space.config.layers):
            for slot, token in (("mix", arch[2 * i]), ("ffn", arch[2 * i + 1])):
                assert list(child.net.layers[i][slot].ops) == [token]
                prefix = f"layers.{i}.{slot}.ops."
                assert {k[len(prefix):].split(".")[0] for k in keys if k.startswith(prefix)} <= {token}


def test_padding_does_not_leak_into_real_positions(space, supernet):
    ids, kwargs = _inputs(space)
    mask = kwargs["attention_mask"]
    other = torch.where(mask.bool(), ids, torch.randint_like(ids, 1, space.config.vocab_size))
    assert not torch.equal(ids, other)
    arch = ("conv7", "ffn128", "mha2", "id", "conv3", "ffn256", "mha4", "ffn128")
    with torch.no_grad():
        _, h1 = supernet(ids, arch=arch, return_hidden=True, **kwargs)
        _, h2 = supernet(other, arch=arch, return_hidden=True, **kwargs)
    real = mask.bool()
    assert (h1[-1][real] - h2[-1][real]).abs().max() < 1e-5
    # Without the mask the padded tokens do change the real positions.
    with torch.no_grad():
        _, h3 = supernet(ids, arch=arch, return_hidden=True, token_type_ids=kwargs["token_type_ids"])
        _, h4 = supernet(other, arch=arch, return_hidden=True, token_type_ids=kwargs["token_type_ids"])
    assert (h3[-1][real] - h4[-1][real]).abs().max() > 1e-3


def test_identity_arch_is_embeddings_only(space, supernet):
    ids, kwargs = _inputs(space)
    with torch.no_grad():
        _, hiddens = supernet(ids, arch=("id",) * 8, return_hidden=True, **kwargs)
        embedded = supernet.embeddings(ids, kwargs["token_type_ids"])
    for h in hiddens:
        assert torch.equal(h, embedded)


def test_features_and_mlm_head(space):
    child = space.build_child("bert-base", head="mlm")
    assert child.net.num_outputs == space.config.vocab_size and child.net.head_type == "mlm"
    ids, kwargs = _inputs(space)
    logits, hiddens = child(ids, return_hidden=True, **kwargs)
    assert logits.shape == (*ids.shape, space.config.vocab_size)
    seq, pooled, feats_hiddens = child.net.features(ids, child.arch, **kwargs)
    assert seq.shape == (*ids.shape, space.config.hidden)
    assert pooled.shape == (ids.shape[0], space.config.hidden)
    assert len(feats_hiddens) == len(hiddens) == space.config.layers
    with pytest.raises(NasUsageError, match="vocabulary"):
        space.build_child("bert-base", head="mlm", num_outputs=5)
    regression = space.build_child("bert-base", num_outputs=1)
    assert regression(ids, **kwargs).shape == (ids.shape[0], 1)


def test_gradients_reach_only_chosen_options(space):
    torch.manual_seed(0)
    net = space.build_supernet()
    arch = ("mha2", "ffn128", "conv5", "id", "id", "ffn256", "conv3", "ffn128")
    ids, kwargs = _inputs(space)
    net(ids, arch=arch, **kwargs).sum().backward()
    for i, layer in enumerate(net.layers):
        for slot, token in (("mix", arch[2 * i]), ("ffn", arch[2 * i + 1])):
            for name, option in layer[slot].ops.items():
                grads = [p.grad for p in option.parameters()]
                if name == token:
                    assert all(g is not None for g in grads), (i, slot, name)
                else:
                    assert all(g is None for g in grads), (i, slot, name)
    assert net.embeddings.word.weight.grad is not None and net.pooler.weight.grad is not None


def test_cost_macs_and_params(space):
    full = space.cost("bert-base")
    mixed = space.cost(("conv3", "ffn128") * 4)
    skip = space.cost(("id",) * 8)
    assert full.macs > mixed.macs > skip.macs > 0
    assert full.backbone_params > mixed.backbone_params > skip.backbone_params
    assert full.params - full.backbone_params == space.config.hidden * 2 + 2  # dropout + Linear head
    assert space.cost(("mha4", "ffn128") * 4).macs < full.macs
    # Per layer: 4 projections plus the score and context matmuls (torch does not count CPU SDPA).
    h, t = space.config.hidden, space.config.seq_len
    assert space.cost(("mha2", "id") * 4).macs - skip.macs == 4 * (4 * h * h * t + 2 * t * t * h)


def _tiny_hf_config(space):
    c = space.config
    return transformers.BertConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden, num_hidden_layers=c.layers,
        num_attention_heads=c.reference_heads, intermediate_size=c.reference_ffn,
        max_position_embeddings=c.max_positions, type_vocab_size=c.type_vocab_size)


def _assert_matches_hf(hf, net, arch, space, atol):
    ids, kwargs = _inputs(space)
    with torch.no_grad():
        expected = hf(input_ids=ids, **kwargs)
        seq, pooled, hiddens = net.features(ids, arch, **kwargs)
    assert (expected.last_hidden_state - seq).abs().max() < atol
    assert (expected.pooler_output - pooled).abs().max() < atol
    assert torch.equal(hiddens[-1], seq)


def test_tiny_hf_parity_via_supernet(space):
    torch.manual_seed(0)
    hf = transformers.BertModel(_tiny_hf_config(space)).eval()
    net = space.build_supernet().eval()
    loaded = load_hf_bert(net, {"bert." + k: v for k, v in hf.state_dict().items()})  # HF task prefix
    assert all("mha2" not in k and "conv" not in k and not k.startswith("head") for k in loaded)
    assert len(loaded) == len(hf.state_dict()) - sum("position_ids" in k for k in hf.state_dict())
    _assert_matches_hf(hf, net, space.parse("bert-base"), space, 1e-5)
    # The super-net now starts a child from BERT weights too.
    _assert_matches_hf(hf, space.child(net, "bert-base").net, space.parse("bert-base"), space, 1e-5)


def test_load_hf_bert_errors(space):
    hf_state = transformers.BertModel(_tiny_hf_config(space)).state_dict()
    with pytest.raises(NasUsageError, match="mha8"):
        load_hf_bert(space.build_supernet(), hf_state, num_attention_heads=8)
    conv_child = space.build_child(("conv3", "ffn256") + ("mha4", "ffn256") * 3)
    with pytest.raises(NasUsageError, match="has no option 'mha4'"):
        load_hf_bert(conv_child, hf_state)
    loaded = load_hf_bert(conv_child, hf_state, strict=False)
    assert not any(k.startswith("layers.0.mix") for k in loaded) and any("layers.1.mix" in k for k in loaded)
    with pytest.raises(NasUsageError, match="vocab_size"):
        load_hf_bert(get_space("bert", vocab_size=100).build_child("bert-base"), hf_state)
    with pytest.raises(NasUsageError, match="encoder layers"):
        load_hf_bert(get_space("bert", layers=2).build_child("bert-base"), hf_state)
    with pytest.raises(NasUsageError, match="super-net or child"):
        load_hf_bert(torch.nn.Linear(2, 2), hf_state)


def test_base_hf_parity_and_param_count():
    """The one base-size model test: BertModel(BertConfig()) weights give the same outputs."""
    space = get_space("bert", preset="base")
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig()).eval()
    child = space.build_child("bert-base").eval()
    load_hf_bert(child, hf.state_dict())
    backbone = sum(p.numel() for p in child.parameters()) - sum(p.numel() for p in child.head.parameters())
    assert backbone == sum(p.numel() for p in hf.parameters()) == 109_482_240
    _assert_matches_hf(hf, child.net, child.arch, space, 1e-4)


def _cli(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        cli_main(list(argv))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_show_base_bert_base(capsys):
    code, out, _ = _cli(capsys, "space", "show", "bert", "--preset", "base", "--arch", "bert-base", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["backbone_params"] == 109_482_240
    assert info["arch"] == ",".join(["mha12", "ffn3072"] * 12)
    assert info["macs"] > 0 and len(info["slots"]) == 24


def test_cli_sample_is_parseable_and_deterministic(capsys, space):
    code, out, _ = _cli(capsys, "space", "sample", "bert", "--n", "5", "--seed", "1")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 5 and all(space.parse(line) for line in lines)
    assert _cli(capsys, "space", "sample", "bert", "--n", "5", "--seed", "1")[1] == out
    assert _cli(capsys, "space", "sample", "bert", "--n", "5", "--seed", "2")[1] != out


def test_cli_bad_arch_is_one_line_error(capsys):
    code, out, err = _cli(capsys, "space", "show", "bert", "--arch", "mha4,ffn256")
    assert code == 2 and "8 slots" in err and "Traceback" not in err
