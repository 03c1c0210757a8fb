"""`stc bundle --fixed` prints its calibration table for SDT too: the residual stream's row
(stc.passes.quantize_residual) has no neuron and no threshold, and must not break the table."""

from __future__ import annotations

import torch
from rich.console import Console

from stc.cli.bundle import quant_table
from stc.ir.frontends.models import from_model
from stc.models import create_model
from stc.passes.quantize import quantize


def test_quant_table_renders_an_sdt_report_with_its_stream_row():
    torch.manual_seed(0)
    graph = from_model(create_model("sdt_tiny").eval())
    x = torch.randint(0, 17, (4, *graph.inputs()[0].shape)).float()
    _, report = quantize(graph, calibration=x)
    rep = report.to_dict()
    stream = [la for la in rep["layers"] if la["name"] == "stream"]
    assert stream and "v_th_mant" not in stream[0]
    console = Console(record=True, width=200)
    console.print(quant_table(rep, "4 samples"))
    text = console.export_text()
    assert "(stream)" in text
    for la in rep["layers"]:
        if "v_th_mant" in la:
            assert str(la["v_th_mant"]) in text
