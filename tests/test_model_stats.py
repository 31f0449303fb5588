"""Parameter / FLOP counter: counting rules, torch vs Paddle agreement, the official LSNet figures."""

from __future__ import annotations

import json

import pytest

from rsrepro.model_stats import (
    LayerCall,
    StatsConfig,
    configs_for,
    model_input_shapes,
    parse_input_spec,
    summarize_calls,
    summarize_params,
)
from tools import model_stats as tool

# The official README's FLOPs, and the exact thop 0.0.31 totals our rules give for one 256x256 pair.
README_THOP = {"diffFPN": (5.215, 5_215_173_504), "thin_diffFPN": (4.778, 4_778_421_408),
               "denseFPN": (5.865, 5_865_196_960)}


def test_parse_input_spec():
    assert parse_input_spec("2x3x256x256") == (2, 3, 256, 256)
    for bad in ("2x3x256", "2x3xAx256", "0x3x8x8", ""):
        with pytest.raises(ValueError, match="expected NxCxHxW"):
            parse_input_spec(bad)


def test_pair_inputs_split_the_batch_between_dates():
    assert model_input_shapes((2, 3, 8, 8), pair=True) == [(1, 3, 8, 8), (1, 3, 8, 8)]
    assert model_input_shapes((2, 3, 8, 8), pair=False) == [(2, 3, 8, 8)]
    with pytest.raises(ValueError, match="must be even"):
        model_input_shapes((3, 3, 8, 8), pair=True)


def test_counting_rules_on_hand_made_calls():
    calls = [
        LayerCall("conv", "conv", (2, 16, 8, 8), (2, 8, 8, 8), kernel_ops=16, thop_kernel_ops=16, bias=True),
        LayerCall("dw", "conv", (2, 8, 8, 8), (2, 8, 8, 8), kernel_ops=9, thop_kernel_ops=9, bias=False),
        LayerCall("fc", "linear", (2, 32), (2, 8), kernel_ops=32, bias=True),
        LayerCall("bn", "norm", (2, 8, 8, 8), (2, 8, 8, 8)),
        LayerCall("gap", "adaptive_avgpool", (2, 8, 8, 8), (2, 8, 1, 1)),
        LayerCall("pool", "avgpool", (2, 3, 8, 8), (2, 3, 4, 4)),
        LayerCall("up", "upsample_bilinear", (2, 8, 4, 4), (2, 8, 8, 8)),
        LayerCall("act", "prelu", (2, 8, 8, 8), (2, 8, 8, 8)),
        LayerCall("deconv", "conv_transpose", (1, 4, 2, 2), (1, 6, 4, 4), kernel_ops=6 * 4,
                  thop_kernel_ops=4 * 4),
    ]
    s = summarize_calls(calls)
    conv, dw, fc, deconv = 1024 * 16, 1024 * 9, 16 * 32, 16 * 24
    assert s["macs_by_kind"] == {"conv": conv + dw, "linear": fc, "conv_transpose": deconv}
    assert s["macs"] == conv + dw + fc + deconv and s["flops"] == 2 * s["macs"]
    assert s["thop_by_kind"] == {
        "conv": 1024 * 17 + dw, "linear": fc, "norm": 2 * 1024, "adaptive_avgpool": 16 * 65,
        "avgpool": 96, "upsample_bilinear": 11 * 1024, "conv_transpose": 96 * 16,
    }


def test_summarize_params():
    entries = [("a.weight", 10, True, False), ("act.weight", 3, True, True), ("bn._mean", 4, False, False)]
    assert summarize_params(entries) == {"params": 13, "params_without_prelu": 10, "prelu_params": 3,
                                         "non_trainable": 4}


@pytest.mark.parametrize("variant", ["diffFPN", "thin_diffFPN", "denseFPN"])
def test_lsnet_counts_agree_across_frameworks_and_with_aten(variant):
    config = StatsConfig(variant, "lsnet", {"variant": variant}, "2x3x64x64", pair=True)
    ref = tool.count_torch(config, (2, 3, 64, 64), aten=True)
    got = tool.count_paddle(config, (2, 3, 64, 64))
    for key in ("params", "params_without_prelu", "macs", "thop", "macs_by_kind", "thop_by_kind"):
        assert got[key] == ref[key], key
    # LSNet has no functional matmul, so ATen-level MACs must equal what the module hooks saw.
    assert ref["aten_macs"] == ref["macs"]


@pytest.mark.parametrize("variant", ["diffFPN", "thin_diffFPN", "denseFPN"])
def test_lsnet_reproduces_official_readme_flops(variant):
    config = next(c for c in configs_for("lsnet") if c.kwargs["variant"] == variant)
    assert config.input == "2x3x256x256" and config.pair
    counts = tool.count_torch(config, parse_input_spec(config.input), aten=False)
    readme, exact = README_THOP[variant]
    assert counts["thop"] == exact
    assert round(counts["thop"] / 1e9, 3) == readme
    assert counts["params_without_prelu"] == config.reported["params_without_prelu"]


def test_every_registered_model_is_counted_in_both_frameworks():
    registered = tool.registered_models()
    assert "lsnet" in registered and "danet" in registered
    rows = []
    for name, frameworks in registered.items():
        config = tool.select_configs(name, None, {}, None)[0]
        shape = (2, 3, 32, 32)
        for framework in frameworks:
            counts = (tool.count_torch(config, shape, aten=False) if framework == "torch"
                      else tool.count_paddle(config, shape))
            rows.append({"label": config.label, "framework": framework, **counts})
            assert counts["params"] > 0 and counts["macs"] > 0
    assert tool.disagreements(rows) == []


def test_cli_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "stats.json"
    code = tool.main(["--model", "lsnet", "--variant", "thin_diffFPN", "--input", "2x3x32x32",
                      "--no-aten", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "lsnet_thin_diffFPN" in printed and "1,176,728" in printed and "1,167,922" in printed
    data = json.loads(out.read_text())
    assert {r["framework"] for r in data["rows"]} == {"torch", "paddle"}
    assert "macs" in data["counting"] and data["rows"][0]["input"] == "2x3x32x32"
    with pytest.raises(SystemExit, match="must be even"):
        tool.main(["--model", "lsnet", "--input", "3x3x32x32", "--json", str(out)])
    with pytest.raises(SystemExit, match="unknown model 'nope'"):
        tool.main(["--model", "nope", "--json", str(out)])
