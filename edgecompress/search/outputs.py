"""What a search leaves behind: the winning ``.tflite`` and ``.keras``, the recipe TOML that
reproduces it, ``search.json`` (sensitivities and every candidate), and the report with the
Pareto plot of all candidates."""

from __future__ import annotations

import json
from pathlib import Path

from edgecompress._io import atomic_write
from edgecompress.search.core import SearchResult, describe, require_winner


def recipe_toml(result: SearchResult, cand: dict) -> str:
    """A recipe that rebuilds ``cand``: each accepted move (filter pruning, factorization) with
    the short fine-tune that followed it, the final fine-tune phases (``distill`` or ``fit`` for
    the epochs early stopping kept), its LUT bit widths and the export."""
    s = result.settings
    lines = [f'name = "search_{cand["name"]}"',
             f'description = "found by edgecompress compress --target '
             f'{_target_arg(result)} --max-drop {result.max_drop:g}"', ""]
    training = f'learning_rate = {{lr:g}}\nbatch_size = {s["batch_size"]}\npatience = 0'
    for move in cand["moves"]:
        step = move["step"]
        if step is None:
            continue
        if step["kind"] == "prune_filters":
            table = ", ".join(f'"{k}" = {v!r}' for k, v in sorted(step["ratio"].items()))
            lines += ["[[step]]", 'kind = "prune_filters"', f"ratio = {{ {table} }}", ""]
        else:
            layers = ", ".join(f'"{n}"' for n in step["layers"])
            lines += ["[[step]]", 'kind = "factorize"', f'rank = {step["rank"]}', f"layers = [{layers}]", ""]
        if move["short_epochs"]:
            lines += ["[[step]]", 'kind = "fit"', f'epochs = {move["short_epochs"]}',
                      training.format(lr=s["learning_rate"]), 'augment = "none"', ""]
    for phase in cand.get("phases", []):
        lines += ["[[step]]", f'kind = "{phase["kind"]}"', f'epochs = {phase["epochs"]}',
                  training.format(lr=phase["learning_rate"]), f'augment = "{phase["augment"]}"', ""]
    lut = cand["lut"] if cand["mode"] == "int8" else {}
    for width in sorted(set(lut.values())):
        names = ", ".join(f'"{n}"' for n, b in sorted(lut.items()) if b == width)
        lines += ["[[step]]", 'kind = "quantize_weights"', f"bits = {width}", "per_channel = true",
                  f"layers = [{names}]", ""]
    lines += ["[[step]]", 'kind = "export"', f'mode = "{cand["mode"]}"']
    lines += ["int8_io = true"] if cand.get("int8_io") else []
    lines += ['micro_compress = "lut"', ""] if lut else [""]
    return "\n".join(lines)


def _target_arg(result) -> str:
    t = result.target
    parts = [f"{k}={v}B" for k, v in (("flash", t.flash), ("arena", t.arena)) if v is not None]
    if t.latency_ms is not None:
        parts.append(f"latency={t.latency_ms:g}ms")
    return ",".join(parts)


def summary(result: SearchResult) -> dict:
    """The search as JSON-ready data (no file bytes)."""
    def row(c):
        return {k: v for k, v in c.items() if k not in ("tflite", "keras", "litert_tflite")}

    return {
        "target": result.target.describe(), "max_drop": result.max_drop,
        "tasks": {t.output: t.kind for t in result.tasks}, "baseline": result.baseline,
        "executor": result.executor,
        "settings": {k: v for k, v in result.settings.items() if k != "strategy"}
        | {"strategy": result.settings.get("strategy") or "none"},
        "winner": result.winner["name"] if result.winner else None,
        "pareto": [c["name"] for c in result.pareto()],
        "candidates": [row(c) for c in result.candidates],
        "iterations": result.iterations,
        "sensitivities": result.sensitivities,
    }


def write_outputs(result: SearchResult, out_dir, title: str = "budget search") -> dict:
    """Write the winner and the report into the existing folder ``out_dir`` (atomically, file by
    file). Raises :class:`~edgecompress._errors.CheckError` before writing anything when no
    candidate fits."""
    from edgecompress.artifacts import scores_of
    from edgecompress.report import Artifact, write_report

    winner = require_winner(result)
    out = Path(out_dir)
    paths = {
        "tflite": atomic_write(out / "winner.tflite", winner["tflite"]),
        "keras": atomic_write(out / "winner.keras", winner["keras"]),
        "recipe": atomic_write(out / "winner.toml", recipe_toml(result, winner)),
        "search": atomic_write(out / "search.json", json.dumps(summary(result), indent=2)),
    }
    front = {c["name"] for c in result.pareto()}
    def scores(values: dict) -> dict:
        return scores_of(result.tasks, [values[t.output] for t in result.tasks])

    artifacts = [Artifact(name="baseline_float_keras", mode="keras", accuracy=result.baseline_accuracy,
                          scores=scores(result.baseline), note="reference")]
    for c in result.candidates:
        note = "; ".join(["winner"] * (c is winner) + ["pareto"] * (c["name"] in front)
                         + c["misses"])
        artifacts.append(Artifact(
            name=c["name"], mode=c["mode"], params=c["params"], file_bytes=c["flash"],
            deploy_bytes=c["flash"], accuracy=c["accuracy"], keras_accuracy=c["keras_accuracy"],
            agreement=c["agreement"], scores=scores(c["scores"]), tflm_agreement=c["tflm_agreement"],
            latency_us=None if c["latency_ms"] is None else 1e3 * c["latency_ms"], note=note))
    notes = (f"Target {result.target.describe()}, max drop {result.max_drop:g} (pp of accuracy, % of "
             f"error), "
             f"{len(result.candidates)} candidates on {result.executor}. deploy B = flash "
             f"(the .tflite TFLite Micro reads in place). Winner: {winner['name']} "
             f"({describe(winner)}), exact TFLM arena {winner['arena']:,} B.")
    paths.update(write_report(out, artifacts, title, baseline="baseline_float_keras", notes=notes))
    return paths
