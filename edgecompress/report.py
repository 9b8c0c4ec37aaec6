"""Reports: a Markdown table, a JSON file and a Pareto plot of accuracy against deployable bytes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from edgecompress._io import atomic_path, atomic_write
from edgecompress.artifacts import Artifact

COLUMNS = [
    ("name", "artifact"), ("mode", "mode"), ("params", "params"), ("nonzero_params", "non-zero"),
    ("macs", "MACs"), ("file_bytes", "file B"), ("gzip_bytes", "gzip B"),
    ("deploy_bytes", "deploy B"), ("ratio", "× smaller"), ("accuracy", "accuracy"),
    ("delta", "Δ pp"), ("agreement", "agreement"), ("latency_us", "µs"), ("flash_bytes", "flash B"),
    ("arena_bytes", "TFLM arena B"), ("tflm_agreement", "TFLM agreement"), ("scores", "scores (held out)"),
    ("status", "guard"), ("note", "note"),
]


def rows_with_ratios(artifacts: list[Artifact], baseline: str | None = None) -> list[dict]:
    """Artifacts as dicts, with ``ratio`` (baseline deploy bytes / own) and ``delta`` (pp)."""
    base = next((a for a in artifacts if a.name == baseline), artifacts[0] if artifacts else None)
    rows = []
    for a in artifacts:
        row = asdict(a)
        row["ratio"] = (
            base.deploy_bytes / a.deploy_bytes
            if base and base.deploy_bytes and a.deploy_bytes else None
        )
        row["delta"] = (
            100 * (a.accuracy - base.accuracy)
            if base and base.accuracy is not None and a.accuracy is not None else None
        )
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], columns=COLUMNS) -> str:
    """A Markdown table of ``rows`` with the given ``(key, title)`` columns."""
    from edgecompress._markdown import table

    present = [(k, t) for k, t in columns if any(r.get(k) not in (None, "", {}) for r in rows)]
    return table([t for _, t in present], ([_fmt(k, r.get(k)) for k, _ in present] for r in rows))


def _fmt(key, value) -> str:
    if value is None or value == "" or value == {}:
        return ""
    if key in ("accuracy", "keras_accuracy", "agreement", "tflm_agreement"):
        return f"{100 * value:.2f}%"
    if key == "delta":
        return f"{value:+.2f}"
    if key == "ratio":
        return f"{value:.1f}×"
    if key == "scores":
        return "; ".join(f"{out} {s['metric']} {s['value']:.4g}" for out, s in value.items())
    if key == "latency_us":
        return f"{value:.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trace_table(trace: list[dict]) -> str:
    """The per-step metric trace (one row per step, one column per output) as Markdown."""
    from edgecompress._markdown import table

    outputs = list(trace[0]["scores"]) if trace else []
    return table(["step", "kind", *outputs],
                 ([entry["step"], entry["kind"], *(_fmt("value", entry["scores"].get(o)) for o in outputs)]
                  for entry in trace))


def write_report(out_dir, artifacts: list[Artifact], title: str, baseline: str | None = None,
                 notes: str = "", trace: list[dict] | None = None, guard: dict | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``pareto.png`` into ``out_dir`` (atomically).

    ``trace`` is a recipe run's per-step scores on the held-out data; ``guard`` the accuracy
    guard's verdict (``{"max_drop", "failures", "worst"}``).

    Returns:
        The written paths by kind.
    """
    out_dir = Path(out_dir)
    rows = rows_with_ratios(artifacts, baseline)
    md = [f"# {title}", "", markdown_table(rows), ""]
    if notes:
        md += [notes, ""]
    if guard and guard.get("failures"):
        md += ["**Accuracy guard: FAILED.** " + " ".join(
            f"{name}: {'; '.join(reasons)}." for name, reasons in guard["failures"].items()), ""]
    if guard and guard.get("worst"):
        worst = guard["worst"]
        md += [f"Step that lost the most: step {worst['step']} ({worst['kind']}), {worst['phrase']}.", ""]
    if trace:
        md += ["## Per-step trace (held-out data)", "", trace_table(trace), ""]
    md += ["![accuracy vs deployable bytes](pareto.png)", ""]
    document = {"title": title, "baseline": baseline, "notes": notes, "artifacts": rows}
    if trace is not None:
        document["trace"] = trace
    if guard is not None:
        document["guard"] = guard
    paths = {
        "markdown": atomic_write(out_dir / "report.md", "\n".join(md)),
        "json": atomic_write(out_dir / "report.json", json.dumps(document, indent=2)),
    }
    paths["pareto"] = pareto_plot(rows, out_dir / "pareto.png", title)
    return paths


def pareto_plot(rows: list[dict], path, title: str) -> Path:
    """Accuracy against deployable bytes (log scale), one point per artifact, frontier drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r["deploy_bytes"], 100 * r["accuracy"], r["name"]) for r in rows
              if r.get("deploy_bytes") and r.get("accuracy") is not None]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for size, acc, name in points:
        ax.scatter(size, acc, s=36)
        ax.annotate(name, (size, acc), textcoords="offset points", xytext=(4, 4), fontsize=7)
    frontier, best = [], -1.0
    for size, acc, _ in sorted(points):
        if acc > best:
            frontier.append((size, acc))
            best = acc
    if len(frontier) > 1:
        ax.plot(*zip(*frontier), "--", color="grey", linewidth=1, label="Pareto frontier")
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("deployable bytes (log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
