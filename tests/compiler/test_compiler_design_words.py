"""SpikeCompiler defaults, target aliases, the compile-time Lava check and the original design's
API words (compile(..., chip_config, profile_energy), compiled(x), energy_per_inference,
utilization)."""

import pytest
import torch
from torch import nn

from stc.compiler import SpikeCompiler
from stc.errors import MappingError, UnsupportedTargetError
from stc.nn import LIF


def mlp():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), LIF(backend="torch"),
                      nn.Linear(8, 3), LIF(backend="torch"))
    with torch.no_grad():
        m[1].weight.mul_(3)
        m[3].weight.mul_(3)
    return m.eval()


def test_default_target_is_what_the_machine_has():
    assert SpikeCompiler().target == ("gpu" if torch.cuda.is_available() else "cpu")
    compiled = SpikeCompiler().compile(mlp(), (1, 4, 4))  # never fails for lack of CUDA
    assert compiled(torch.rand(2, 1, 4, 4)).shape == (2, 3)


@pytest.mark.parametrize(("alias", "target"), [("loihi", "loihi2"), ("loihi2", "loihi2"),
                                               ("simulation", "lava-sim"), ("cuda", "gpu"),
                                               ("LAVA-SIM", "lava-sim")])
def test_target_aliases(alias, target):
    assert SpikeCompiler(alias).target == target


def test_timesteps_spellings():
    assert SpikeCompiler("cpu", timesteps=6).time_steps == 6
    assert SpikeCompiler("cpu", time_steps=6).time_steps == 6
    with pytest.raises(ValueError, match="disagree"):
        SpikeCompiler("cpu", time_steps=4, timesteps=6)
    with pytest.raises(UnsupportedTargetError, match="aliases"):
        SpikeCompiler("tpu")


@pytest.mark.filterwarnings("ignore:.*nn.Flatten")
def test_lava_sim_refuses_an_unmappable_graph_at_compile_time():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), LIF(backend="torch"), nn.Flatten(2),
                        nn.Linear(16, 3), LIF(backend="torch")).eval()
    cpu = SpikeCompiler("cpu", 3).compile(seq, (1, 4, 4))  # the float/fixed runtime maps it
    assert cpu(torch.rand(2, 1, 4, 4)).shape[0] == 2
    with pytest.raises(MappingError, match="flatten"):
        SpikeCompiler("lava-sim").compile(seq, (1, 4, 4))


def test_original_design_words():
    m = mlp()
    compiled = SpikeCompiler(target="cpu", time_steps=4).compile(
        m, input_shape=(1, 1, 4, 4), chip_config="ncl-2chip", profile_energy=True)
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(compiled(x), compiled.run(x))
    e = compiled.energy_per_inference
    assert isinstance(e, float) and e == compiled.energy_per_inference.report.paper_nj > 0
    assert "Horowitz" in e.source and e.unit == "nJ"
    u = compiled.utilization
    # the allocator never shares a core between layers and each LIF layer (8 and 3 neurons)
    # fits one core: 2 cores of 2 x 128
    assert (u["chips_available"], u["cores_available"], u["cores_used"]) == (2, 256, 2)
    assert u["core_utilization"] == pytest.approx(2 / 256)
    assert u["estimate_of_float_graph"] is True
    with pytest.raises(ValueError, match="ncl-"):
        SpikeCompiler("cpu").compile(m, (1, 4, 4), chip_config="two chips")


def test_lava_target_energy_is_the_loihi_estimate():
    compiled = SpikeCompiler("simulation", time_steps=4).compile(mlp(), (1, 4, 4),
                                                                 profile_energy=True)
    e = compiled.energy_per_inference
    assert e == e.report.loihi1_nj and "Davies" in e.source
    assert compiled.utilization["estimate_of_float_graph"] is False


def test_top_level_names():
    import stc
    from stc.compiler import SpikeCompiler as SC
    from stc.models import create_model

    assert stc.SpikeCompiler is SC and stc.create_model is create_model
    with pytest.raises(AttributeError, match="no attribute"):
        stc.nope  # noqa: B018
