"""Official checkpoints that loaded but computed something else: SDT dvs_mode (Erode
max-pools), SDT spike_mode "plif", Spikformer's CIFAR10-DVS code (pos_embed / norm keys,
SSA scale 0.25), and the official event layout [B, T, C, H, W] (time_first=False).
References: faithful small copies of the official structures (tests/models/official_nets.py,
SpikingJelly's own LIFNode / ParametricLIFNode)."""

from __future__ import annotations

import pytest
import torch
from official_nets import OfficialNet, official_state_dict, randomise

from stc.errors import MappingError
from stc.models import create_model
from stc.models.keymap import CheckpointKeyError, load_official_state_dict

DVS = dict(img_size=16, in_channels=2, num_classes=5, embed_dim=32, num_heads=2, depths=2,
           mlp_ratio=4.0, T=4, pooling="0011", backend="torch")


def _events(seed=1, B=3, T=4):  # official layout [B, T, C, H, W]
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, T, 2, 16, 16, generator=g) < 0.4).float() * 2


def _sdt_ref(dvs=False, plif=False):
    torch.manual_seed(0)
    return randomise(OfficialNet(2, 32, 2, 2, 4.0, 5, "0011", 4, True, plif=plif, dvs=dvs),
                     0, bn_shift=0.3)


@pytest.mark.parametrize("dvs,plif", [(True, False), (False, True), (True, True)])
def test_sdt_dvs_mode_and_plif_give_identical_logits(dvs, plif):
    ref = _sdt_ref(dvs, plif)
    ours = create_model("sdt_tiny", **DVS, dvs_mode=dvs,
                        neuron="plif" if plif else "lif").eval()
    rep = load_official_state_dict(ours, official_state_dict(ref), "sdt", variant="cifar10dvs"
                                   if dvs else "custom")
    assert len(rep["loaded"]) == len(ours.state_dict())
    x = _events()
    with torch.no_grad():
        want, got = ref(x), ours(x, time_first=False)
    assert want.std() > 1e-3
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if dvs:  # the same weights without the Erode pools compute something else
        plain = create_model("sdt_tiny", **DVS, neuron="plif" if plif else "lif").eval()
        load_official_state_dict(plain, official_state_dict(ref), "sdt", variant="custom")
        with torch.no_grad():
            assert (plain(x, time_first=False) - want).abs().max() > 1e-2


def test_dvs_checkpoints_need_their_settings_stated():
    ref = _sdt_ref(dvs=True)
    plain = create_model("sdt_tiny", **DVS).eval()
    with pytest.raises(CheckpointKeyError, match="looks like a CIFAR10-DVS.*dvs_mode=True"):
        load_official_state_dict(plain, ref.state_dict(), "sdt")
    with pytest.raises(CheckpointKeyError, match="dvs_mode=True"):
        load_official_state_dict(plain, ref.state_dict(), "sdt", variant="cifar10dvs")
    plif_ref = _sdt_ref(plif=True)
    with pytest.raises(CheckpointKeyError, match="neuron='plif'"):
        load_official_state_dict(plain, official_state_dict(plif_ref), "sdt", variant="custom")
    with pytest.raises(ValueError, match="variant"):
        load_official_state_dict(plain, ref.state_dict(), "sdt", variant="dvs")
    with pytest.raises(ValueError, match="arch 'sdt'"):
        create_model("spikformer_tiny", dvs_mode=True)


def test_spikformer_cifar10dvs_keys_and_scale():
    torch.manual_seed(0)
    ref = randomise(OfficialNet(2, 32, 2, 2, 4.0, 5, "0011", 4, False, dvs=True), 0,
                    bn_shift=0.3)
    sd = ref.state_dict()
    assert {"pos_embed", "norm.weight", "norm.bias"} <= set(sd)
    wrong = create_model("spikformer_tiny", **DVS).eval()
    with pytest.raises(CheckpointKeyError, match="attn_scale=0.25"):
        load_official_state_dict(wrong, sd, "spikformer")
    with pytest.raises(CheckpointKeyError, match="0.25"):
        load_official_state_dict(wrong, sd, "spikformer", variant="cifar10dvs")
    ours = create_model("spikformer_tiny", **DVS, attn_scale=0.25).eval()
    rep = load_official_state_dict(ours, sd, "spikformer", variant="cifar10dvs")
    assert {"pos_embed", "norm.weight", "norm.bias"} <= set(rep["dropped"])
    x = _events(2)
    with torch.no_grad():
        want, got = ref(x), ours(x, time_first=False)
    assert want.std() > 1e-3
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_event_layout_is_explicit():
    m = create_model("spikformer_tiny", **DVS).eval()
    x = _events(3, B=2, T=4)                      # [B=2, T=4, ...]
    with torch.no_grad():
        a = m(x, time_first=False)
        b = m(x.transpose(0, 1).contiguous(), time_first=True)
        torch.testing.assert_close(a, b)
        with pytest.raises(ValueError, match="time_first=False for"):
            m(x)                                  # dim 1 is T, dim 0 is not: no guessing
        assert m(x.transpose(0, 1).contiguous()).shape == (2, 5)
    with pytest.raises(TypeError, match="time_first"):
        m(x, time_first="yes")


def test_compiler_refuses_what_the_ir_cannot_express():
    from stc.ir.frontends.models import from_model

    with pytest.raises(MappingError, match="dvs_mode"):
        from_model(create_model("sdt_tiny", **DVS, dvs_mode=True))
