"""Fixtures for the gRPC server tests: a repository of tiny LIF models and a running server on
127.0.0.1 with a free port (port 0), stopped after the test."""

from __future__ import annotations

import pytest
import stc_server_testnet as net
from stc.server.app import InferenceServer, ServerConfig


@pytest.fixture
def repo_dir(tmp_path):
    """Repository with ``lif`` version 1 (weights seed 0) and version 2 (seed 1)."""
    root = tmp_path / "repo"
    net.write_model(root / "lif" / "1" / "model.stcb", net.make_weight(0), version="1")
    net.write_model(root / "lif" / "2" / "model.stcb", net.make_weight(1), version="2")
    return root


@pytest.fixture
def start_server(repo_dir):
    """Factory: ``start_server(**ServerConfig fields) -> InferenceServer`` (started)."""
    servers = []

    def start(loader=net.load, root=None, **fields):
        cfg = ServerConfig(host="127.0.0.1", port=0, **fields)
        server = InferenceServer(cfg, root or repo_dir, loader=loader)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=2)


@pytest.fixture
def server(start_server):
    """A running server over ``repo_dir`` with default settings."""
    return start_server()
