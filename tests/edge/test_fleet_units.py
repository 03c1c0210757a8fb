"""stc fleet's bad input and node failures (fast, one in-process agent): nodes file errors,
unknown node, missing bundle (exit 2), wrong token and unreachable nodes (exit 1, named in
the table), and the text table."""

import socket

import edge_nets
import pytest
from stc.edge.agent import EdgeAgent
from stc.edge.fleet import load_nodes
from typer.testing import CliRunner

from stc.cli.main import app


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("text,match", [
    ("[nodes.a]\naddress = 1\n", "address must be 'host:port'"),
    ("[nodes.a]\naddress = \"h:1\"\ncolour = \"red\"\n", "unknown keys \\['colour'\\]"),
    ("[nodes.a]\naddress = \"h:1\"\n[nodes.b]\naddress = \"h:1\"\n", "also node 'a'"),
    ("[nodes.a]\naddress = \"h:1\"\ntoken_env = \"STC_NOT_SET_X\"\n", "is not set"),
    ("[nodes.a]\naddress = \"h:1\"\ntls_ca = \"nope.pem\"\n", "tls_ca nope.pem is not a file"),
    ("[nodes.a]\naddress = \"h:1\"\ndevice = \"tpu\"\n", "device must be"),
    ("[nodes]\n", "no nodes"),
    ("nodes = [\n", "not valid TOML"),
])
def test_nodes_file_errors(tmp_path, text, match):
    p = tmp_path / "nodes.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_nodes(p)
    res = CliRunner().invoke(app, ["fleet", "status", "--nodes", str(p)])
    assert res.exit_code == 2 and "error:" in res.output


def test_wrong_token_unreachable_unknown_node_and_table(tmp_path):
    a = EdgeAgent(tmp_path / "store", token="right")
    a.start()
    try:
        b = edge_nets.write(tmp_path / "m.stcb", version="1")
        nodes = tmp_path / "nodes.toml"
        nodes.write_text(f'[nodes.good]\naddress = "127.0.0.1:{a.port}"\ntoken = "right"\n'
                         f'[nodes.badtoken]\naddress = "localhost:{a.port}"\ntoken = "wrong"\n'
                         f'[nodes.down]\naddress = "127.0.0.1:{_free_port()}"\n')
        r = CliRunner().invoke(app, ["fleet", "deploy", str(b), "--nodes", str(nodes),
                                     "--max-failures", "2"])
        assert r.exit_code == 1
        assert "activated" in r.output and "wrong or missing token" in r.output
        assert "unreachable" in r.output and "good" in r.output
        r = CliRunner().invoke(app, ["fleet", "deploy", str(b), "--nodes", str(nodes),
                                     "--node", "good"])
        assert r.exit_code == 0 and "unchanged" in r.output  # already active
        r = CliRunner().invoke(app, ["fleet", "rollback", "mlp", "--nodes", str(nodes),
                                     "--node", "ghost"])
        assert r.exit_code == 2 and "unknown node(s) ['ghost']" in r.output
        r = CliRunner().invoke(app, ["fleet", "deploy", str(tmp_path / "no.stcb"), "--nodes",
                                     str(nodes)])
        assert r.exit_code == 2 and "bundle not found" in r.output
    finally:
        a.stop(grace=1)
