"""The README tables are generated (tools/readme_tables.py) into README.md and README_cn.md from the committed
result files; a table that no longer matches its results, or a file without it, fails here."""

from __future__ import annotations

import json

from tools.readme_tables import FILES, REPO, SECTIONS, speed_table, update


def test_both_readmes_carry_every_generated_table_and_it_is_current():
    stale = [s for f in FILES for s in update(REPO / f, write=False)]
    assert not stale, "run `python tools/readme_tables.py --write`:\n" + "\n".join(stale)


def test_the_chinese_readme_is_linked_from_the_english_one():
    english = (REPO / "README.md").read_text(encoding="utf-8")
    chinese = (REPO / "README_cn.md").read_text(encoding="utf-8")
    assert "README_cn.md" in english.split("\n## ", 1)[0]
    assert "README.md" in chinese.split("\n## ", 1)[0]
    assert set(SECTIONS) == {name for name in SECTIONS if f"<!-- generated:{name}:start -->" in chinese}


def test_a_stale_or_empty_table_is_detected_and_rewritten(tmp_path):
    name = next(iter(SECTIONS))
    start, end = f"<!-- generated:{name}:start -->", f"<!-- generated:{name}:end -->"
    readme = tmp_path / "README.md"
    for body in ("", "| an old table |"):
        readme.write_text(f"# title\n\n{start}\n{body}\n{end}\n\ntext after\n", encoding="utf-8")
        assert any(f"'{name}' is stale" in s for s in update(readme, write=True))
        assert not [s for s in update(readme, write=False) if f"'{name}'" in s]
        assert readme.read_text(encoding="utf-8").endswith(f"{end}\n\ntext after\n")


def test_the_speed_table_picks_the_fastest_EXACT_deployment(tmp_path):
    seconds = {"torch": 1.0, "torch_onnx_ort": 0.9, "paddle": 5.0, "infer_deploy": 1.2, "onnx_ort": 0.8,
               "onnx_openvino": 0.5}
    exactness = {"infer_deploy": {"exact": True}, "onnx_ort": {"exact": True},
                 "onnx_openvino": {"exact": False, "reason": "max|diff| / max|dygraph| = 3e-04 > 1e-05"}}
    result = {"inputs": [[1, 3, 8, 8]], "seconds": seconds, "exactness": exactness,
              "rel_l2_vs_torch": {"onnx_ort": 1e-6, "onnx_openvino": 2e-6}}
    (tmp_path / "speed_t1.json").write_text(json.dumps({"results": {"m": result}}))
    row = speed_table(tmp_path).splitlines()[-1]
    assert "0.500 s (not exact)" in row and "| ONNX Runtime | **0.80x** | **0.89x** | 1.0e-06 |" in row
