"""The benchmark report: sections replaced in place, new ones in pipeline order, and a
table of contents that follows."""

from __future__ import annotations

from benchmarks.report import Section, write_section


def section(key: str, title: str, value: str) -> Section:
    s = Section(key=key, title=title, command=f"python -m benchmarks --only {key}",
                columns=["what", "value"])
    s.rows.append(["x", value])
    return s


def test_sections_keep_pipeline_order_and_contents_follow(tmp_path):
    report = tmp_path / "benchmarks.md"
    order = ["data", "fusion", "library"]
    write_section(section("library", "Library: search", "1"), report, order)
    write_section(section("data", "Data layer: decoding", "2"), report, order)
    write_section(section("fusion", "Fusion (av-digits)", "3"), report, order)
    text = report.read_text()
    assert text.index("bench:data -->") < text.index("bench:fusion -->") \
        < text.index("bench:library -->")
    toc = text[text.index("<!-- contents -->"):text.index("<!-- /contents -->")]
    assert toc.splitlines()[1:] == [
        "- [Data layer: decoding](#data-layer-decoding): "
        "`python -m benchmarks --only data`",
        "- [Fusion (av-digits)](#fusion-av-digits): `python -m benchmarks --only fusion`",
        "- [Library: search](#library-search): `python -m benchmarks --only library`"]
    # a rerun replaces its own section only
    write_section(section("fusion", "Fusion (av-digits)", "99"), report, order)
    again = report.read_text()
    assert again.count("<!-- bench:fusion -->") == 1 and "| x | 99 |" in again
    assert "| x | 2 |" in again and "| x | 1 |" in again and "| x | 3 |" not in again
    assert again.count("<!-- contents -->") == 1
