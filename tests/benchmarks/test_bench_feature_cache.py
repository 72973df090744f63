"""Benchmark: a frozen resnet18 on an image folder, epochs after the first with the feature
cache against recomputing the backbone, side by side in one run.

The same experiment twice: `freeze = true` (the trainer caches the backbone's features in its
first pass and later epochs train only the head), and the same with the cache switched off, so
every epoch decodes, resizes and normalises every image and runs resnet18 on it. 200 noisy
96x96 PNGs in 5 classes, image_size 64, batch 16, 4 epochs; the figure is the mean time of
epochs 2-4, and both runs must reach the same validation accuracy every epoch.
Target: >= 10x. Run with `make bench` or
`pytest -s -m bench tests/benchmarks/test_bench_feature_cache.py`.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.transfer_helpers import RESNET18_FILE, save_random_resnet18
from workbench.engine.experiment import parse_experiment
from workbench.engine.reports import BaseObserver, EpochReport
from workbench.engine.trainer import Trainer

pytestmark = pytest.mark.bench
CLASSES, PER_CLASS, EPOCHS = 5, 40, 4


class Epochs(BaseObserver):
    def __init__(self) -> None:
        self.reports: list[EpochReport] = []
        self.cache_note = ""

    def on_epoch_end(self, report: EpochReport) -> None:
        self.reports.append(report)

    def on_log(self, text: str) -> None:
        if text.startswith("Feature cache:"):
            self.cache_note = text


def _folder(root: Path) -> Path:
    noise = np.random.default_rng(0)
    for label in range(CLASSES):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(PER_CLASS):
            pixels = noise.integers(0, 256, (96, 96, 3), dtype=np.uint8)
            pixels[..., label % 3] //= 2 + label  # a little signal per class
            Image.fromarray(pixels).save(root / f"class{label}" / f"{index}.png")
    return root


def _run(text: str, cache: bool, monkeypatch: pytest.MonkeyPatch) -> Epochs:
    with monkeypatch.context() as patch:
        if not cache:
            patch.setattr("workbench.engine.trainer.cacheable_backbone", lambda b, e: (None, ""))
        observer = Epochs()
        Trainer(parse_experiment(text), observer=observer).fit()
    return observer


def test_feature_cache_vs_recomputing_the_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = _folder(tmp_path / "photos")
    weights = save_random_resnet18(tmp_path / RESNET18_FILE)
    text = (
        "[model]\nlayers = [\n"
        f'  {{ name = "backbone", type = "Backbone", arch = "resnet18", weights = "{weights}", '
        "freeze = true },\n"
        '  { name = "fc", type = "Linear", out_features = 5 },\n]\n'
        f'[data]\nname = "image-folder"\npath = "{photos}"\nimage_size = 64\nbatch_size = 16\n'
        f'[train]\nepochs = {EPOCHS}\noptimizer = "sgd"\nlr = 0.05\n'
    )
    run = _run(text, True, monkeypatch)
    cached, recomputed = run.reports, _run(text, False, monkeypatch).reports
    with_cache = statistics.mean(report.elapsed_seconds for report in cached[1:])
    without = statistics.mean(report.elapsed_seconds for report in recomputed[1:])
    ratio = without / with_cache
    print(
        f"\nfrozen resnet18, {CLASSES * PER_CLASS} images at 64x64, epochs 2-{EPOCHS}: "
        f"recomputing {without * 1000:.1f} ms/epoch, feature cache {with_cache * 1000:.2f} "
        f"ms/epoch ({ratio:.0f}x); first epoch recomputing {recomputed[0].elapsed_seconds:.2f} s"
        f"\n{run.cache_note}"
    )
    print(
        "val accuracy per epoch: cache "
        + ", ".join(f"{r.val_accuracy:.3f}" for r in cached)
        + " | recomputing "
        + ", ".join(f"{r.val_accuracy:.3f}" for r in recomputed)
    )
    assert [r.val_accuracy for r in cached] == [r.val_accuracy for r in recomputed]
    assert ratio >= 10
