"""The NumPy oracle against independent references: the torch fixed-point kernel reference,
the runtime's integer model, and Lava's own weight-quantisation functions."""

import numpy as np
import pytest
import torch

from stc.lava.fixed_point import check_loihi_weight, cuba_lif_fixed


@pytest.mark.parametrize("i_decay,v_decay,vth", [(1024, 256, 50), (4096, 0, 10), (0, 4096, 3)])
def test_oracle_matches_kernel_reference(i_decay, v_decay, vth):
    from stc.kernels.cuba_fixed.reference import cuba_fixed_reference

    rng = np.random.default_rng(0)
    a = rng.integers(-3000, 3000, (12, 7))  # large inputs exercise the 24-bit wrap / clip
    bias = rng.integers(-50, 50, 7)
    ours = cuba_lif_fixed(a, i_decay, v_decay, vth, bias)
    ref, _, _ = cuba_fixed_reference(torch.tensor(a, dtype=torch.int32), du=i_decay - 1,
                                     dv=v_decay, vth_mant=vth,
                                     bias_mant=torch.tensor(bias), bias_exp=6)
    assert ours.sum() > 0
    np.testing.assert_array_equal(ours, ref.numpy())


def test_oracle_matches_runtime_fixed_model():
    from stc.runtime.fixed import loihi_cuba_lif

    rng = np.random.default_rng(1)
    a = rng.integers(-200, 400, (10, 5))
    ours = cuba_lif_fixed(a, 800, 300, 90)
    ref = loihi_cuba_lif(torch.tensor(a), 800, 300, 90).numpy()
    assert ours.sum() > 0
    np.testing.assert_array_equal(ours, ref)


def test_weight_check_agrees_with_lava_quantisation():
    from stc.lava.compat import import_lava

    import_lava()
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    rng = np.random.default_rng(2)
    for w in (rng.integers(-128, 127, (6, 5)) * 2, rng.integers(0, 256, (4, 4)),
              -rng.integers(0, 256, (4, 4))):
        mode = determine_sign_mode(w)
        lava_w = truncate_weights(clip_weights(w, mode, num_bits=8), mode, 8)
        np.testing.assert_array_equal(check_loihi_weight("w", w), lava_w)
    odd = np.array([[3, -4]])
    assert not np.array_equal(truncate_weights(clip_weights(odd, determine_sign_mode(odd), 8),
                                               determine_sign_mode(odd), 8), odd)
    with pytest.raises(ValueError, match="even"):
        check_loihi_weight("w", odd)
    with pytest.raises(ValueError, match=r"\[-256, 254\]"):
        check_loihi_weight("w", np.array([[300, -2]]))
    with pytest.raises(TypeError, match="integers"):
        check_loihi_weight("w", np.array([[0.5, 1.0]]))
