import json

from edgecompress.report import Artifact, markdown_table, rows_with_ratios, write_report


def _artifacts():
    return [
        Artifact(name="baseline_float32", deploy_bytes=1_600_000, accuracy=0.985),
        Artifact(name="int8", deploy_bytes=400_000, accuracy=0.984),
        Artifact(name="deep", deploy_bytes=32_000, accuracy=0.980),
    ]


def test_ratios_and_deltas():
    rows = rows_with_ratios(_artifacts(), "baseline_float32")
    assert rows[2]["ratio"] == 50.0
    assert abs(rows[2]["delta"] - (-0.5)) < 1e-9


def test_markdown_hides_empty_columns():
    table = markdown_table(rows_with_ratios(_artifacts()))
    assert "50.0×" in table and "-0.50" in table and "MACs" not in table


def test_write_report(tmp_path):
    paths = write_report(tmp_path, _artifacts(), "t", baseline="baseline_float32")
    data = json.loads(paths["json"].read_text())
    assert [a["name"] for a in data["artifacts"]] == ["baseline_float32", "int8", "deep"]
    png = paths["pareto"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
