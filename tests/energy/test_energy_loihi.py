"""Loihi estimates vs hand calculations with Davies 2018 Table 2 and Hala Point figures."""

import pytest

from stc.energy import LayerRecord, LoihiOpCounts, counts_from_records, estimate_loihi_energy
from stc.errors import UnsupportedTargetError


def _records(T=4):
    return [
        LayerRecord("conv1", "conv", 1000, 1.0, T, True),
        LayerRecord("lif1", "neuron", 200, 0.0, T),
        LayerRecord("fc", "fc", 2000, 0.25, T),
        LayerRecord("lif2", "neuron", 10, 0.0, T),
    ]


def test_counts_from_records_hand():
    c = counts_from_records(_records(), active_fraction=0.5, mapping={"cores": 3, "chips": 1})
    assert c.synaptic_ops == pytest.approx(1000 * 4 + 0.25 * 4 * 2000)
    assert c.neuron_updates_active == pytest.approx(0.5 * 210 * 4)
    assert c.neuron_updates_inactive == pytest.approx(0.5 * 210 * 4)
    assert (c.cores, c.chips, c.timesteps) == (3, 1, 4)
    assert c.spikes_within_tile == 0  # LayerRecord has no out_firing_rate


def test_counts_use_out_firing_rate_for_spikes():
    class Stats:  # stc.models.stats.LayerStats-like record, duck-typed
        def __init__(self, **kw):
            self.__dict__.update(kw)

    recs = [Stats(name="lif", kind="neuron", flops=100, in_firing_rate=0.0, T=4,
                  is_encoding_layer=False, out_firing_rate=0.125),
            Stats(name="fc", kind="fc", flops=1000, in_firing_rate=0.125, T=4,
                  is_encoding_layer=False, out_firing_rate=None)]
    c = counts_from_records(recs, mapping={"cores_used": 2, "chips_used": 1})
    assert c.spikes_within_tile == pytest.approx(100 * 4 * 0.125)
    assert c.synaptic_ops == pytest.approx(0.125 * 4 * 1000)
    assert (c.cores, c.chips) == (2, 1)
    e = estimate_loihi_energy(c)
    assert e.total_pj == pytest.approx(500 * 23.6 + 400 * 81 + 50 * 1.7)


def test_loihi1_estimate_hand():
    c = LoihiOpCounts(synaptic_ops=1e6, neuron_updates_active=1e4, neuron_updates_inactive=3e4,
                      timesteps=4, spikes_within_tile=500, hops_ew=100, hops_ns=50, chips=2)
    e = estimate_loihi_energy(c, chip="loihi1", timestep_s=1e-3)
    dynamic = 1e6 * 23.6 + 1e4 * 81 + 3e4 * 52 + 500 * 1.7 + 100 * 3.0 + 50 * 4.0
    static = 3.34 / 32 * 2 * 4 * 1e-3 * 1e12  # W * chips * s -> J -> pJ
    assert e.dynamic_pj == pytest.approx(dynamic)
    assert e.static_pj == pytest.approx(static)
    assert e.total_pj == pytest.approx(dynamic + static)
    assert e.total_mj == pytest.approx((dynamic + static) * 1e-9)
    assert e.kind == "estimate"
    assert "Loihi 1, pre-silicon, 14 nm" in e.label
    assert any("Davies" in s and "Table 2" in s for s in e.sources)
    assert any("Frady" in s for s in e.sources)
    assert all(i.source for i in e.items)


def test_loihi1_without_chips_omits_static_and_says_so():
    e = estimate_loihi_energy(LoihiOpCounts(10.0, 2.0, timesteps=2), timestep_s=1e-3)
    assert e.static_pj == 0 and e.total_pj == pytest.approx(10 * 23.6 + 2 * 81)
    assert any("static energy NOT included" in n for n in e.notes)


def test_loihi2_hala_point_bound_hand():
    c = LoihiOpCounts(synaptic_ops=3.8e8, neuron_updates_active=1.2e8,
                      neuron_updates_inactive=1.2e8, timesteps=4)
    e = estimate_loihi_energy(c, chip="loihi2")
    low = (3.8e8 + 2.4e8) / 15e12 * 1e12
    high = 2600 * max(3.8e8 / 380e12, 2.4e8 / 240e12) * 1e12
    assert e.low_pj == pytest.approx(low)
    assert e.total_pj == pytest.approx(high)
    assert e.low_pj < e.total_pj
    assert "Hala Point" in e.label and e.kind == "estimate"
    assert any("Hala Point" in s for s in e.sources)


@pytest.mark.parametrize("chip", ["loihi3", "Loihi3"])
def test_loihi3_rejected(chip):
    with pytest.raises(UnsupportedTargetError, match="no public Loihi 3"):
        estimate_loihi_energy(LoihiOpCounts(1.0, 1.0), chip=chip)


def test_bad_arguments():
    with pytest.raises(ValueError, match="chip"):
        estimate_loihi_energy(LoihiOpCounts(1.0, 1.0), chip="truenorth")
    with pytest.raises(TypeError, match="counts"):
        estimate_loihi_energy({"synaptic_ops": 1})
    with pytest.raises(ValueError, match="synaptic_ops"):
        LoihiOpCounts(-1.0, 0.0)
    with pytest.raises(ValueError, match="active_fraction"):
        counts_from_records(_records(), active_fraction=2)
    with pytest.raises(ValueError, match="timestep_s"):
        estimate_loihi_energy(LoihiOpCounts(1.0, 1.0), timestep_s=0)
