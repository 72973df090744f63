"""Export the training plots: one PNG or SVG sheet of the four plots, CSV tables of the data."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, QPointF, QRectF
from PySide6.QtGui import QColor, QImage, QImageWriter, QPainter

from workbench.engine.atomic import atomic_path, atomic_write_text
from workbench.engine.reports import EpochReport
from workbench.engine.run_files import METRIC_COLUMNS
from workbench.ui.qt import pg

EPOCH_COLUMNS = METRIC_COLUMNS  # the same columns as a run's metrics.csv, so one script reads both
BATCH_COLUMNS = ("epoch", "batch", "epoch_position", "loss", "smoothed_loss")


# export ---------------------------------------------------------------------------
def export_png(plots: Sequence[pg.PlotWidget], path: str | Path) -> Path:
    """The plots in one PNG, two to a row as on screen; written atomically."""
    images = [plot_image(plot) for plot in plots]
    cell_w = max(image.width() for image in images)
    cell_h = max(image.height() for image in images)
    rows = (len(images) + 1) // 2
    sheet = QImage(cell_w * 2, cell_h * rows, QImage.Format.Format_ARGB32)
    sheet.fill(QColor("white"))
    painter = QPainter(sheet)
    for index, image in enumerate(images):
        painter.drawImage(QPointF((index % 2) * cell_w, (index // 2) * cell_h), image)
    painter.end()
    target = Path(path)
    with atomic_path(target) as temp:
        writer = QImageWriter(str(temp), QByteArray(b"png"))  # temp's .tmp suffix names no format
        if not writer.write(sheet):
            raise OSError(f"could not write the PNG image {target}: {writer.errorString()}")
    return target


def export_svg(plots: Sequence[pg.PlotWidget], path: str | Path) -> Path:
    """The plots in one SVG vector image, two to a row as on screen; written atomically."""
    parts = []
    sizes = [plot_rect(plot) for plot in plots]
    cell_w = max(rect.width() for rect in sizes)
    cell_h = max(rect.height() for rect in sizes)
    rows = (len(sizes) + 1) // 2
    for index, plot in enumerate(plots):
        exporter = pg.exporters.SVGExporter(plot.plotItem)
        svg = exporter.export(toBytes=True).decode("utf-8")
        x, y = (index % 2) * cell_w, (index // 2) * cell_h
        parts.append(svg_cell(svg, f"plot{index}", x, y, sizes[index]))
    width, height = 2 * cell_w, rows * cell_h
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        f' version="1.2" baseProfile="tiny" width="{width:g}" height="{height:g}"'
        f' viewBox="0 0 {width:g} {height:g}">\n'
        "<title>Torch Workbench training plots</title>\n" + "\n".join(parts) + "\n</svg>\n"
    )
    target = Path(path)
    atomic_write_text(target, document)
    return target


def export_csv(
    epoch_reports: Sequence[EpochReport], batch_columns: Sequence[np.ndarray], path: str | Path
) -> list[Path]:
    """Per-epoch metrics to `path` (metrics.csv columns) and per-batch losses (BATCH_COLUMNS)
    to `<stem>-batches.csv` beside it; both atomic. Returns the two paths."""
    target = Path(path)
    epochs = io.StringIO()
    writer = csv.DictWriter(epochs, fieldnames=EPOCH_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for report in epoch_reports:
        row = dataclasses.asdict(report)
        writer.writerow({key: "" if row[key] is None else row[key] for key in EPOCH_COLUMNS})
    batches = io.StringIO()
    batch_writer = csv.writer(batches)
    batch_writer.writerow(BATCH_COLUMNS)
    for epoch, batch, position, loss, smoothed in zip(*batch_columns, strict=True):
        batch_writer.writerow(
            [int(epoch), int(batch), f"{position:.6g}", repr(float(loss)), f"{smoothed:.6g}"]
        )
    batch_target = target.with_name(f"{target.stem}-batches{target.suffix or '.csv'}")
    atomic_write_text(target, epochs.getvalue())
    atomic_write_text(batch_target, batches.getvalue())
    return [target, batch_target]


def plot_rect(plot: pg.PlotWidget) -> QRectF:
    rect: QRectF = plot.plotItem.sceneBoundingRect()
    return rect


def plot_image(plot: pg.PlotWidget) -> QImage:
    exporter = pg.exporters.ImageExporter(plot.plotItem)
    exporter.parameters()["background"] = QColor("white")
    image: QImage = exporter.export(toBytes=True)
    return image


def svg_cell(svg: str, prefix: str, x: float, y: float, rect: QRectF) -> str:
    """One exported plot as a group translated to (x, y). Groups, not nested <svg> elements,
    because Qt's own SVG renderer (SVG Tiny 1.2) skips nested documents; ids get `prefix` so
    the four plots' clip paths do not collide."""
    match = re.search(r"<svg\b[^>]*>(.*)</svg>", svg, flags=re.DOTALL)
    body = match.group(1) if match else ""
    body = re.sub(r"<(title|desc|style)>.*?</\1>", "", body, flags=re.DOTALL)
    body = re.sub(r'<path\b[^>]*\sd=""[^>]*/>', "", body)  # empty curves; renderers reject d=""
    # pyqtgraph paints the background as a 100% rect, which would cover the whole sheet
    body = body.replace(
        '<rect width="100%" height="100%"',
        f'<rect width="{rect.width():g}" height="{rect.height():g}"',
    )
    body = re.sub(r'id="([^"]+)"', rf'id="{prefix}_\1"', body)
    body = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}_\1)", body)
    body = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}_\1"', body)
    return f'<g transform="translate({x:g},{y:g})">{body}</g>'
