"""Model presets: parameter counts vs the papers, shapes, encodings, config and errors."""

from __future__ import annotations

import json

import pytest
import torch
from official_nets import randomise

from stc.models import PAPER_PARAMS_M, ModelConfig, create_model, list_presets, preset_config

TINY = ["spikformer_tiny", "sdt_tiny", "dsformer_tiny"]


def test_presets_are_named_as_the_papers():
    assert set(list_presets()) == {
        "spikformer_8_384", "spikformer_8_512", "spikformer_8_768", "sdt_8_384", "sdt_6_512",
        "sdt_8_512", "sdt_10_512", "sdt_8_768", "dsformer_8_384", *TINY}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS_M))
def test_parameter_counts_match_the_papers(name):
    with torch.device("meta"):
        model = create_model(name)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    # Papers: Spikformer Table 3 (16.81 / 29.68 / 66.34 M), SDT Table 2; within 1 %.
    assert count == pytest.approx(PAPER_PARAMS_M[name], rel=0.01)


@pytest.mark.parametrize("name", [n for n in list_presets() if n not in TINY])
def test_imagenet_presets_token_grid(name):
    cfg = preset_config(name)
    assert (cfg.img_size, cfg.T, cfg.num_classes, cfg.patch_size, cfg.num_tokens) == (
        224, 4, 1000, 16, 196)
    assert cfg.embed_dim % cfg.num_heads == 0


@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_shapes_and_direct_encoding(name):
    torch.manual_seed(0)
    model = create_model(name, backend="torch").eval()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        y = model(x)
        # Independent encoding: repeat the image over T by hand.
        y5 = model(x.unsqueeze(0).repeat(model.config.T, 1, 1, 1, 1))
        y_t2 = model(x.unsqueeze(0).repeat(2, 1, 1, 1, 1))   # encoded input keeps its own T
    assert y.shape == (3, 10) and y_t2.shape == (3, 10)
    torch.testing.assert_close(y, y5, rtol=0, atol=0)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", TINY)
def test_tiny_backward_reaches_the_stem(name):
    torch.manual_seed(0)
    model = create_model(name, backend="torch")
    loss = torch.nn.functional.cross_entropy(model(torch.rand(4, 1, 8, 8)),
                                             torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert model.patch_embed.proj_conv.weight.grad.abs().sum() > 0
    assert model.block[0].attn.q_bn.weight.grad is not None


def test_dsformer_with_window_1_ratio_1_equals_spikformer():
    spk = randomise(create_model("spikformer_tiny", backend="torch"), seed=0, bn_shift=0.3)
    ds = create_model("dsformer_tiny", backend="torch", window_size=1, sparse_ratio=1.0).eval()
    ds.load_state_dict(spk.state_dict())
    x = torch.rand(4, 1, 8, 8) * 2
    with torch.no_grad():
        want = spk(x)
        assert want.std(0).abs().sum() > 0      # the net is not silent
        torch.testing.assert_close(ds(x), want, rtol=1e-6, atol=1e-6)
    sparse = create_model("dsformer_tiny", backend="torch", window_size=2, sparse_ratio=0.25)
    sparse.load_state_dict(spk.state_dict())
    with torch.no_grad():
        assert not torch.equal(sparse.eval()(x), spk(x))


def test_config_json_round_trip():
    cfg = preset_config("dsformer_tiny", sparse_ratio=0.3)
    back = ModelConfig.from_json(cfg.to_json())
    assert back == cfg and json.loads(cfg.to_json())["sparse_ratio"] == 0.3
    model = create_model("sdt_tiny", backend="torch")
    assert ModelConfig.from_dict(json.loads(json.dumps(model.config.to_dict()))) == model.config


def test_config_errors_name_the_values():
    with pytest.raises(ValueError, match=r"embed_dim \(64\).*num_heads \(3\)"):
        create_model("spikformer_tiny", num_heads=3)
    with pytest.raises(ValueError, match=r"img_size \(12\).*patch size 8"):
        create_model("sdt_tiny", img_size=12, pooling="0111")
    with pytest.raises(ValueError, match="unknown model 'vit'"):
        create_model("vit")
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        create_model("sdt_tiny", heads=4)
    with pytest.raises(ValueError, match="pooling"):
        create_model("sdt_tiny", pooling="01")
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="vit")
    with pytest.raises(ValueError, match="sparse_ratio"):
        create_model("dsformer_tiny", sparse_ratio=1.5)


def test_input_errors():
    model = create_model("spikformer_tiny", backend="torch")
    with pytest.raises(ValueError, match=r"\[C, H, W\] = \[1, 8, 8\]"):
        model(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="rank|images"):
        model(torch.rand(8, 8))
    with pytest.raises(TypeError, match="floating"):
        model(torch.ones(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError):
        model("image")


@pytest.mark.parametrize("name", TINY)
def test_triton_backend_matches_torch_reference(name):
    """backend="triton" (interpreted on CPU under pytest) vs the pure-PyTorch path."""
    if not torch.cuda.is_available():
        from stc.kernels import triton_interpreted

        assert triton_interpreted(), "the root conftest sets TRITON_INTERPRET=1 without CUDA"
    small = dict(T=2, embed_dim=32, num_heads=2)
    ref = randomise(create_model(name, backend="torch", **small), seed=0, bn_shift=0.3).train()
    fused = create_model(name, backend="triton", **small).train()
    fused.load_state_dict(ref.state_dict())
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2
    y_ref, y_fused = ref(x), fused(x)
    torch.testing.assert_close(y_fused, y_ref, rtol=1e-5, atol=1e-5)
    y_ref.square().sum().backward()
    y_fused.square().sum().backward()
    g_ref = ref.patch_embed.proj_conv.weight.grad
    assert g_ref.abs().sum() > 0
    torch.testing.assert_close(fused.patch_embed.proj_conv.weight.grad, g_ref,
                               rtol=1e-4, atol=1e-5)
