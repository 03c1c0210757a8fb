"""Per-epoch validation accuracy, best-epoch keeping and --resume: a resumed run equals an
uninterrupted one bit for bit; the kept weights are the best validation epoch's."""

import pytest
import torch
from torch import nn

from stc.train import TrainConfig, evaluate, load_digits_split, train_model
from stc.train.data import DigitsSplit


def small():
    d = load_digits_split(seed=0)
    return DigitsSplit(d.x_train[:300], d.y_train[:300], d.x_test[:100], d.y_test[:100])


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(32, 10))


CFG = dict(epochs=4, batch_size=32, lr=3e-3, seed=0, val_fraction=0.2)


class Stop(Exception):
    pass


def test_resume_equals_an_uninterrupted_run(tmp_path):
    data = small()
    ref_model = net()
    ref = train_model(ref_model, data, TrainConfig(**CFG))
    model = net()

    def stop_after_2(epoch, loss, lr):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train_model(model, data, TrainConfig(**CFG), on_epoch=stop_after_2,
                    state_dir=tmp_path / "state")
    resumed_model = net()  # a fresh process would rebuild the model too
    steps = []
    res = train_model(resumed_model, data, TrainConfig(**CFG), state_dir=tmp_path / "state",
                      resume=True, on_step=lambda s, n: steps.append((s, n)))
    assert steps[0][0] == 2 * len(steps) // 2 + 1 and steps[-1][0] == steps[-1][1]
    assert res.losses == ref.losses and res.best_epoch == ref.best_epoch
    for a, b in zip(ref_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    assert res.test_accuracy == ref.test_accuracy
    with pytest.raises(ValueError, match="another config"):
        train_model(net(), data, TrainConfig(**{**CFG, "lr": 1e-3}),
                    state_dir=tmp_path / "state", resume=True)


def test_best_validation_epoch_is_kept_and_test_never_selects():
    data = small()
    seen, snaps = [], []
    model = net()
    res = train_model(model, data, TrainConfig(**CFG), on_epoch_end=seen.append,
                      on_epoch=lambda *a: snaps.append(
                          {k: v.clone() for k, v in model.state_dict().items()}))
    vals = [r["val_accuracy"] for r in seen]
    assert len(vals) == 4 and all(0 <= v <= 1 for v in vals)
    best = max(range(4), key=lambda i: (vals[i], -i))  # first maximum
    assert res.best_epoch == best + 1 and res.best_val_accuracy == vals[best]
    for k, v in model.state_dict().items():  # the model holds the best epoch's weights
        assert torch.equal(v, snaps[best][k])
    assert best != 3 or vals[3] > max(vals[:3])
    assert evaluate(model, data.x_test, data.y_test) == res.test_accuracy
    no_val = train_model(net(), data, TrainConfig(**{**CFG, "val_fraction": 0.0}))
    assert no_val.best_epoch is None and no_val.history[0]["val_accuracy"] is None
