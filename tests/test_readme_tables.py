"""The README tables are generated (tools/readme_tables.py) into README.md and README_cn.md from the committed
result files; a table that no longer matches its results, or a file without it, fails here."""

from __future__ import annotations

from tools.readme_tables import FILES, REPO, SECTIONS, update


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
