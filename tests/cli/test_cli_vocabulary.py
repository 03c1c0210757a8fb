"""The CLI vocabulary (CONTRIBUTING.md / stc.cli.options) holds for EVERY registered subcommand.

The walk enumerates the typer app itself (groups included), so subcommands added later
(convert, export, edge, fleet, ...) are checked too. Deprecated spellings still work, warn on
stderr and are hidden from --help.
"""

import textwrap
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from stc.cli import options
from stc.cli.main import app


def walk(cmd, path=()):
    """Yield (path, command) for every leaf command of the click/typer tree."""
    subs = getattr(cmd, "commands", None)
    if subs:
        for name, sub in sorted(subs.items()):
            yield from walk(sub, (*path, name))
    else:
        yield path, cmd


COMMANDS = list(walk(typer.main.get_command(app)))
IDS = [" ".join(p) for p, _ in COMMANDS]


def opts_of(param) -> list[str]:
    return [*param.opts, *getattr(param, "secondary_opts", [])]


def parser_of(param):
    info = getattr(getattr(param, "type_descriptor", None), "parameter_info", None)
    return getattr(info, "parser", None)


def test_walk_sees_the_known_subcommands():
    names = {p[0] for p, _ in COMMANDS}
    assert {"bench", "bundle", "demo", "energy", "infer", "inspect", "keygen", "run", "serve",
            "train", "verify"} <= names


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_subcommand_follows_the_vocabulary(path, cmd):
    visible = [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]
    hidden = [p for p in cmd.params if p.param_type_name == "option" and p.hidden]
    visible_names = {o for p in visible for o in opts_of(p)}
    for p in visible:
        names = opts_of(p)
        for o in names:
            assert o not in options.BANNED, f"{' '.join(path)}: {o} is not in the vocabulary"
            assert "_" not in o, f"{' '.join(path)}: option {o} uses '_' (use '-')"
        if "--device" in names:
            parse = parser_of(p)
            assert isinstance(parse, options.Choice), "--device must use options.device()"
            assert parse.choices and set(parse.choices) <= set(options.DEVICES)
            if "gpu" in parse.choices:
                assert parse("cuda") == "gpu" and parse("GPU") == "gpu"
            with pytest.raises(typer.BadParameter, match="--device must be one of"):
                parse("tpu")
        if "--backend" in names:
            parse = parser_of(p)
            assert isinstance(parse, options.Choice), "--backend must use options.backend()"
            assert set(parse.choices) <= set(options.KERNEL_BACKENDS)
            with pytest.raises(typer.BadParameter):
                parse("cuda-graphs")
        if "--numerics" in names:
            parse = parser_of(p)
            assert isinstance(parse, options.Choice), "--numerics must use options.numerics()"
            assert set(parse.choices) <= set(options.NUMERICS)
        if "-T" in names or "--timesteps" in names:
            assert names[:2] == ["--timesteps", "-T"] or names == ["--timesteps"]
            assert p.type_descriptor.annotation is int
        if "-o" in names or "--output" in names:
            assert "--output" in names and p.type_descriptor.is_path, \
                f"{' '.join(path)}: -o/--output must be an output FILE path"
        if "--json" in names:
            assert p.is_flag
    for p in hidden:  # every hidden option is a deprecated alias of a visible one
        (old,) = p.opts
        assert (p.help or "").startswith("deprecated alias of "), f"{old} hidden, not deprecated"
        new = p.help.removeprefix("deprecated alias of ").split()[0]
        assert new in visible_names, f"{' '.join(path)}: {old} aliases {new}, which is missing"


def test_help_of_every_subcommand_is_readable_at_80_columns():
    runner = CliRunner()
    for path, _ in COMMANDS:
        r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert r.exit_code == 0, (path, r.output)
        assert "<bool>" not in r.output, path
        for old in options.BANNED:  # deprecated spellings are hidden
            assert f" {old} " not in r.output, (path, old)


FACTORY = textwrap.dedent("""
    import torch
    from torch import nn
    from stc.nn import LIF

    def make():
        torch.manual_seed(0)
        m = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), LIF(backend="torch"),
                          nn.Linear(6, 3), LIF(backend="torch"))
        with torch.no_grad():
            m[1].weight.mul_(3)
            m[3].weight.mul_(3)
            m[3].bias.add_(1.0)
        return m.eval()
""")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A signed bundle made with the DEPRECATED spellings (--time-steps, --key)."""
    work = tmp_path_factory.mktemp("vocab")
    (work / "vocab_net.py").write_text(FACTORY)
    runner = CliRunner()
    r = runner.invoke(app, ["keygen", "--out", str(work / "keys" / "new")])
    assert r.exit_code == 0, r.output  # keygen creates the folder
    keys = work / "keys" / "new"
    import os

    cwd = os.getcwd()
    os.chdir(work)
    try:
        r = runner.invoke(app, ["bundle", "vocab_net:make", "-o", str(work / "m.stcb"),
                                "--input-shape", "1,4,4", "--time-steps", "3",
                                "--key", str(keys / "stc_signing.pem")])
    finally:
        os.chdir(cwd)
    x = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    np.save(work / "x.npy", x)
    return work, keys, r


def test_deprecated_spellings_still_work_and_warn(signed):
    work, keys, r = signed
    assert r.exit_code == 0, r.output
    assert "--time-steps is deprecated" in r.output and "use --timesteps" in r.output
    assert "--key is deprecated" in r.output and "use --signing-key" in r.output
    from stc.bundle import read_bundle

    b = read_bundle(work / "m.stcb", public_key=keys / "stc_signing.pub.pem")
    assert b.verified and b.manifest["time_steps"] == 3
    runner = CliRunner()
    old = runner.invoke(app, ["verify", str(work / "m.stcb"), "--key",
                              str(keys / "stc_signing.pub.pem")])
    new = runner.invoke(app, ["verify", str(work / "m.stcb"), "--public-key",
                              str(keys / "stc_signing.pub.pem")])
    assert old.exit_code == new.exit_code == 0
    assert "signature verified" in old.output and "signature verified" in new.output
    assert "--key is deprecated" in old.output and "deprecated" not in new.output


def _run(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in r.output
    return r


def test_run_device_backend_split(signed, tmp_path):
    work, keys, _ = signed
    b, x = work / "m.stcb", work / "x.npy"
    ref = _run("run", b, "-i", x, "--device", "cpu", "-o", tmp_path / "a.npy")
    assert ref.exit_code == 0, ref.output
    assert "deprecated" not in ref.output
    old = _run("run", b, "-i", x, "--backend", "cpu", "-o", tmp_path / "b.npy")
    assert old.exit_code == 0, old.output
    assert "--backend cpu for the device is deprecated" in old.output
    assert "use --device cpu" in old.output
    kern = _run("run", b, "-i", x, "--device", "cpu", "--backend", "torch",
                "-o", tmp_path / "c.npy")
    assert kern.exit_code == 0 and "deprecated" not in kern.output
    a, bb, c = (np.load(tmp_path / f) for f in ("a.npy", "b.npy", "c.npy"))
    np.testing.assert_array_equal(a, bb)
    np.testing.assert_array_equal(a, c)
    bad = _run("run", b, "-i", x, "--device", "tpu")
    flat = " ".join(bad.output.replace("│", " ").split())
    assert bad.exit_code == 2 and "must be one of cpu | gpu | lava-sim | loihi" in flat
    clash = _run("run", b, "-i", x, "--device", "lava-sim", "--backend", "cpu")
    assert clash.exit_code == 2


def test_gpu_hint_is_cli_syntax_without_cuda(signed):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the no-CUDA error path")
    work, _, _ = signed
    r = _run("run", work / "m.stcb", "-i", work / "x.npy", "--device", "cuda")
    assert r.exit_code == 2
    assert "--device cpu" in r.output and "backend='cpu'" not in r.output


def test_load_bundle_device_and_deprecated_backend(signed):
    from stc.runtime import load_bundle

    work, _, _ = signed
    x = np.load(work / "x.npy")
    want = load_bundle(work / "m.stcb", device="cpu").infer({"input": x})["output"]
    with pytest.warns(DeprecationWarning, match="device="):
        got = load_bundle(work / "m.stcb", backend="cpu").infer({"input": x})["output"]
    np.testing.assert_array_equal(want, got)
    with pytest.raises(ValueError, match="disagree"):
        load_bundle(work / "m.stcb", device="cpu", backend="lava-sim")
    with pytest.raises(ValueError, match="device"):
        load_bundle(work / "m.stcb", device="tpu")


def test_bench_defaults_to_a_run_folder(tmp_path, monkeypatch):
    from stc.cli.bench import default_run_folder

    monkeypatch.chdir(tmp_path)
    a = default_run_folder()
    a.mkdir(parents=True)
    b = default_run_folder()
    assert a.parent == b.parent == Path("runs/bench") and a != b


def test_stc_demo_forwards_to_stc_demo_main(monkeypatch):
    import stc.demo

    seen = []
    monkeypatch.setattr(stc.demo, "main", lambda argv: seen.append(argv) or 0)
    r = CliRunner().invoke(app, ["demo", "--fresh", "--lava-samples", "4", "--extra", "x"])
    assert r.exit_code == 0, r.output
    assert seen == [["--workdir", "runs/demo", "--lava-samples", "4", "--seed", "0", "--fresh",
                     "--extra", "x"]]
    monkeypatch.setattr(stc.demo, "main", lambda argv: 3)
    assert CliRunner().invoke(app, ["demo"]).exit_code == 3
