"""Official checkpoint key maps: an official-structure net (tests/models/official_nets.py, with
SpikingJelly's LIFNode) and the stc model loaded from its state_dict give the same logits."""

from __future__ import annotations

import pytest
import torch
from official_nets import OfficialNet, randomise

from stc.models import create_model
from stc.models.keymap import CheckpointKeyError, load_official_state_dict, map_official_keys
from stc.models.stats import firing_rates

TINY = dict(img_size=32, in_channels=3, num_classes=5, embed_dim=32, num_heads=2, depths=2,
            mlp_ratio=4.0, T=4, pooling="1111", backend="torch")


def _pair(arch: str, seed: int = 0):
    sdt = arch == "sdt"
    torch.manual_seed(seed)
    ref = randomise(OfficialNet(3, 32, 2, 2, 4.0, 5, "1111", 4, sdt), seed, bn_shift=0.3)
    ours = create_model(f"{arch}_tiny", **TINY).eval()
    return ref, ours


@pytest.mark.parametrize("arch,source", [("spikformer", "spikformer"), ("sdt", "sdt"),
                                         ("dsformer", "spikformer")])
def test_official_checkpoint_gives_identical_logits(arch, source):
    ref, ours = _pair("sdt" if arch == "sdt" else "spikformer")
    if arch == "dsformer":  # window 1, ratio 1: DSFormer attention is SSA exactly
        ours = create_model("dsformer_tiny", **TINY, window_size=1, sparse_ratio=1.0).eval()
    report = load_official_state_dict(ours, ref.state_dict(), source=source)
    assert len(report["loaded"]) == len(ours.state_dict())
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert want.abs().sum() > 0 and want.std() > 1e-3   # the net is not silent
    rates = firing_rates(ours, x)                        # ... nor is its attention path
    if arch != "sdt":
        assert sum(r for n, r in rates.items() if n.endswith("attn.attn_lif")) > 0, rates
    assert rates["block.1.attn.q_lif"] > 0 and rates["block.1.mlp.fc2_lif"] > 0, rates
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_dropped_keys_are_the_unused_official_parameters():
    ref, ours = _pair("spikformer")
    report = load_official_state_dict(ours, ref.state_dict(), "spikformer")
    assert report["dropped"] == sorted(f"block.{i}.norm{j}.{p}" for i in range(2)
                                       for j in (1, 2) for p in ("weight", "bias"))
    ref, ours = _pair("sdt")
    report = load_official_state_dict(ours, ref.state_dict(), "sdt")
    assert report["dropped"] == [f"block.{i}.attn.talking_heads.weight" for i in range(2)]


def test_conv_weights_are_reshaped_to_linear():
    ref, ours = _pair("spikformer")
    load_official_state_dict(ours, ref.state_dict(), "spikformer")
    w = ref.state_dict()["block.1.mlp.fc1_conv.weight"]
    assert w.shape == (128, 32, 1, 1)
    assert torch.equal(ours.block[1].mlp.fc1_linear.weight, w[:, :, 0, 0])
    assert torch.equal(ours.block[0].attn.q_linear.weight,
                       ref.state_dict()["block.0.attn.q_conv.weight"][:, :, 0])


def test_wrapped_and_prefixed_checkpoints_load():
    ref, ours = _pair("sdt")
    wrapped = {"state_dict": {"module." + k: v for k, v in ref.state_dict().items()},
               "epoch": 3}
    load_official_state_dict(ours, wrapped, "sdt")
    assert torch.equal(ours.head.weight, ref.head.weight)


def test_unknown_missing_and_misshaped_keys_are_reported():
    ref, ours = _pair("spikformer")
    sd = dict(ref.state_dict())
    sd["block.0.attn.q_lif.w"] = torch.zeros(())          # e.g. a PLIF time constant
    del sd["head.bias"]
    sd["block.1.mlp.fc2_bn.weight"] = torch.ones(7)
    with pytest.raises(CheckpointKeyError) as err:
        load_official_state_dict(ours, sd, "spikformer")
    msg = str(err.value)
    assert "block.0.attn.q_lif.w" in msg and "head.bias" in msg
    assert "block.1.mlp.fc2_bn.weight" in msg and "(7,)" in msg


def test_depth_mismatch_and_wrong_source():
    ref, _ = _pair("spikformer")
    shallow = create_model("spikformer_tiny", **{**TINY, "depths": 1})
    with pytest.raises(CheckpointKeyError, match="block.1"):
        load_official_state_dict(shallow, ref.state_dict(), "spikformer")
    sdt = create_model("sdt_tiny", **TINY)
    with pytest.raises(ValueError, match="source='spikformer'"):
        load_official_state_dict(sdt, ref.state_dict(), "spikformer")
    with pytest.raises(ValueError, match="source"):
        map_official_keys(ref.state_dict(), "vit")


def test_spikformer_cifar_code_layout_loads_with_qkv_bias():
    """cifar10/model.py: nn.Linear layers with biases, stem pooling "0011", (q k^T) v."""
    torch.manual_seed(0)
    ref = randomise(OfficialNet(3, 32, 2, 1, 4.0, 5, "0011", 4, False, cifar=True), 0,
                    bn_shift=0.3)
    ours = create_model("spikformer_tiny", **{**TINY, "pooling": "0011", "img_size": 16,
                                               "depths": 1, "qkv_bias": True}).eval()
    load_official_state_dict(ours, ref.state_dict(), "spikformer")
    assert torch.equal(ours.block[0].attn.q_linear.bias, ref.block[0].attn.q_linear.bias)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert want.std() > 1e-3
    assert firing_rates(ours, x)["block.0.attn.attn_lif"] > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    without_bias = create_model("spikformer_tiny", **{**TINY, "pooling": "0011",
                                                       "img_size": 16, "depths": 1})
    with pytest.raises(CheckpointKeyError, match="q_linear.bias"):
        load_official_state_dict(without_bias, ref.state_dict(), "spikformer")
