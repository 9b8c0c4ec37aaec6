"""The headline: the shipped Deep-Compression recipes on LeNet-5, against the float32 TFLite file.

    python -m edgecompress.bench.deep_compression --mnist-dir ../shared/data/mnist
"""

from __future__ import annotations

if __name__ == "__main__":  # options (and --help) before TensorFlow loads
    import sys

    from edgecompress import bench

    sys.exit(bench.main(__spec__.name, description=__doc__))

import tempfile

from edgecompress import recipe as recipes
from edgecompress.pipeline import (
    baseline_artifacts,
    quick_recipe,
    shipped_recipe,
    train_baseline,
)
from edgecompress.report import rows_with_ratios


def run(train, test, quick: bool = False) -> list[dict]:
    """Baseline float32 / int8 PTQ and every artifact of the demo's ``deep_compression.toml``
    and of ``deep_compression_long.toml`` (longer fine-tuning), on ``test``."""
    model = train_baseline(train, test, epochs=1 if quick else 10, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = baseline_artifacts(model, train, test, tmp)
        for name in ("deep_compression", "deep_compression_long"):
            recipe = recipes.load(shipped_recipe(name))
            recipe = quick_recipe(recipe) if quick else recipe
            artifacts += recipes.run(recipe, model, train, test, tmp, verbose=0, enforce=False)[1]
    rows = rows_with_ratios(artifacts, "baseline_float32")
    return [{"artifact": r["name"], "mode": r["mode"], "non-zero params": r["nonzero_params"],
             "deploy bytes": r["deploy_bytes"],
             "x smaller than float32 TFLite": round(r["ratio"], 1) if r["ratio"] else None,
             "accuracy": r["accuracy"], "delta pp": round(r["delta"], 2)} for r in rows]
