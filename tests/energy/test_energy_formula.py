"""Paper formula vs a hand calculation on a tiny net: one encoding conv, one conv, one linear."""

import pytest

from stc.energy import PRESETS, LayerRecord, paper_energy


def _tiny_net(T=4):
    # conv1 (encoding): 3x3, 8x8 output, 2 -> 4 channels; conv2: 3x3, 8x8, 4 -> 4 channels;
    # fc: 256 -> 10; attention products; one neuron layer (ignored by the formula).
    conv1 = 3 * 3 * 8 * 8 * 2 * 4
    conv2 = 3 * 3 * 8 * 8 * 4 * 4
    fc = 256 * 10
    return [
        LayerRecord("conv1", "conv", conv1, 1.0, T, True),
        LayerRecord("lif1", "neuron", 8 * 8 * 4, 0.0, T),
        LayerRecord("conv2", "conv", conv2, 0.25, T),
        LayerRecord("attn", "attention", 500, 0.1, T),
        LayerRecord("fc", "fc", fc, 0.5, T),
    ], (conv1, conv2, fc)


@pytest.mark.parametrize("times_T", [True, False])
def test_formula_matches_hand_calculation(times_T):
    recs, (conv1, conv2, fc) = _tiny_net(T=4)
    e = paper_energy(recs, precision="fp32", encoding_times_T=times_T)
    mac = conv1 * (4 if times_T else 1)
    sops = 0.25 * 4 * conv2 + 0.1 * 4 * 500 + 0.5 * 4 * fc
    hand = 4.6 * mac + 0.9 * sops
    assert e.macs == pytest.approx(mac)
    assert e.sops == pytest.approx(sops)
    assert e.total_pj == pytest.approx(hand)
    assert e.total_mj == pytest.approx(hand * 1e-9)
    assert e.encoding_times_T is times_T
    assert [layer.name for layer in e.layers] == ["conv1", "conv2", "attn", "fc"]
    assert sum(layer.energy_pj for layer in e.layers) == pytest.approx(hand)
    assert e.layers[0].op == "MAC" and all(layer.op == "AC" for layer in e.layers[1:])


@pytest.mark.parametrize("precision,mac,ac", [("fp16", 1.5, 0.4), ("int8", 0.23, 0.03)])
def test_presets_and_sources(precision, mac, ac):
    recs, (conv1, conv2, fc) = _tiny_net(T=2)
    e = paper_energy(recs, precision=precision)
    sops = 0.25 * 2 * conv2 + 0.1 * 2 * 500 + 0.5 * 2 * fc
    assert e.total_pj == pytest.approx(mac * conv1 * 2 + ac * sops)
    assert PRESETS[precision].e_mac_pj == mac
    assert any("Horowitz" in s for s in e.sources)
    assert e.kind.startswith("estimate")
    d = e.to_dict()
    assert d["total_mj"] == pytest.approx(e.total_pj / 1e9) and "layers" in d


def test_duck_typed_records_and_overrides():
    class Rec:  # the models engineer's record type, duck-typed
        def __init__(self, **kw):
            self.__dict__.update(kw)

    recs = [Rec(name="fc", kind="fc", flops=100, in_firing_rate=0.2, T=3,
                is_encoding_layer=False)]
    e = paper_energy(recs, e_ac_pj=2.0)
    assert e.total_pj == pytest.approx(2.0 * 0.2 * 3 * 100)


def test_bad_input_errors():
    recs, _ = _tiny_net()
    with pytest.raises(ValueError, match="precision"):
        paper_energy(recs, precision="fp8")
    with pytest.raises(ValueError, match="empty"):
        paper_energy([])
    with pytest.raises(TypeError, match="lacks"):
        paper_energy([object()])
    with pytest.raises(ValueError, match="in_firing_rate"):
        LayerRecord("x", "fc", 10, 1.5, 4)
    with pytest.raises(ValueError, match="kind"):
        LayerRecord("x", "pool", 10, 0.5, 4)
    with pytest.raises(ValueError, match="one T"):
        paper_energy([LayerRecord("a", "fc", 1, 0.1, 2), LayerRecord("b", "fc", 1, 0.1, 4)])
