"""Result files of a run (docs/protocol.md, "Results, metrics and reports"): result.json, report.md
and grid.png, written atomically.

The grid is the seed's Fig. 4: rows of images (plain, encrypted, restored) for a fixed set of
target images (the first :data:`GRID_COLUMNS`), the SSIM of each restored image under it. The
same drawing code lays out a bench's grid across ciphers and attacks (:mod:`ppattack.bench`).
"""
from __future__ import annotations

import base64
import io
import json
import math
import os
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from .harness import RunResult
from .metrics import METRICS
from .records import RunRecord, Scores
from .file_io import atomic_write_bytes, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from .audit_records import ThreatSummary
    from .bench_records import BenchDocument, LeaderboardRow

GRID_COLUMNS = 8  # images per grid row: the first targets, always the same ones
MIN_CELL = 96  # small images are upscaled (nearest neighbour, integer factor) to at least this
MAX_CELL = 128  # larger images are shrunk to this
CAPTION_HEIGHT = 18  # text strip under a row with captions
FONT_SIZE = 12
PAD = 6  # around the row labels
GAP = 2  # white pixels between images and between rows
CAVEAT = ("A cipher that these attacks fail against is *not broken by these attacks*; that is "
          "not a proof of security.")
SSIM_NOTE = ("SSIM is \"wang\" (Gaussian window 11, sigma 1.5, data range 255, valid region) "
             "unless marked skimage-legacy; higher SSIM and PSNR and lower LPIPS mean the "
             "restoration is closer to the plain image.")


# -- formatting ----------------------------------------------------------------------------------

def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: ``n/a`` for None, strings (``inf``) as they are."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def fmt_accuracy(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _fact(value: Any) -> str:
    if isinstance(value, float):
        return fmt(value, 4)
    if isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, default=str)
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


def lpips_note(record: RunRecord) -> str | None:
    """One sentence about LPIPS: why it is missing, or a warning about a non-standard trunk."""
    if record.metrics.lpips is None:
        return f"LPIPS unavailable: {record.metrics.lpips_unavailable}."
    backbone = record.metric_conventions.get("lpips_model", {}).get("backbone")
    if backbone and not backbone.get("torchvision_imagenet"):
        return (f"Warning: the LPIPS trunk `{backbone['file']}` (SHA-256 {backbone['sha256'][:12]}...) "
                "is not torchvision's ImageNet AlexNet checkpoint; these LPIPS values are not "
                "comparable with published ones.")
    return None


def control_note(record: RunRecord) -> str:
    """One sentence on the positive control (the same attack on ``plain``)."""
    control, attack = record.control, record.attack.name
    if not control.ran:
        return f"Positive control: {control.reason}."
    verdict = (f"SSIM {control.ssim:.3f} >= {control.threshold}: passed"
               if control.passed else
               f"SSIM {control.ssim:.3f} < {control.threshold}: FAILED. {attack} does not "
               "restore unencrypted images at this budget, so its result on this cipher is no "
               "evidence either way")
    return f"Positive control ({attack} on `plain`, same data, preset and seed): {verdict}."


# -- report.md -----------------------------------------------------------------------------------

def summary_mean(scores: Scores | None, metric: str) -> Any:
    """The mean of metric ``metric`` (a name in :data:`~ppattack.metrics.METRICS`) in ``scores``
    (None when there are no scores or no such summary)."""
    summary = None if scores is None else scores[metric]
    return None if summary is None else summary.mean


def mirror_note(scores: Scores) -> str | None:
    """One sentence on the SSIM up to a left-right mirror of ``scores``: which orientation it
    took (None when the result predates that metric)."""
    mirror = scores.ssim_up_to_mirror
    if mirror is None:
        return None
    if mirror.mirrored:
        return (f"SSIM up to a left-right mirror: the restorations score higher all mirrored left-right "
                f"(mean SSIM {fmt(mirror.mean)}, against {fmt(scores.ssim.mean)} as restored): the "
                "attack restored the mirror image of the targets.")
    return ("SSIM up to a left-right mirror: the restorations score higher as restored than all mirrored "
            "left-right (one orientation for the whole set), so it equals their SSIM.")


def ssim_up_to_mirror_text(ssim: Any, up_to_mirror: Any, attack: str | None = None) -> str:
    """A mean SSIM for a table, followed by the SSIM up to a left-right mirror where that reads
    otherwise (and ``attack``, the attack that reached it, when given), e.g.
    ``"0.201 (up to a left-right mirror: 0.998, keyrec)"``."""
    text = fmt(ssim)
    if up_to_mirror is None or fmt(up_to_mirror) == text:
        return text
    return f"{text} (up to a left-right mirror: {fmt(up_to_mirror)}{f', {attack}' if attack else ''})"


def report_markdown(record: RunRecord) -> str:
    """The side-by-side table a person reads: restored vs the ciphertext baseline, key space, accuracy."""
    cipher, attack, accuracy, dataset = record.cipher, record.attack, record.accuracy, record.dataset
    lines = [f"# {cipher.name} vs {attack.name}", "",
             f"Dataset `{dataset.name}` {'x'.join(map(str, dataset.image_shape))}, "
             f"{dataset.splits['targets']} target images; preset `{record.config.preset}`; "
             f"seed {record.seed}; threat model `{attack.threat_model}`; device "
             f"`{record.environment.device}`.", "", SSIM_NOTE, "",
             "| metric | restored mean | restored median | restored std | ciphertext baseline mean |",
             "|---|---|---|---|---|"]
    for metric in METRICS:
        entry, digits = record.metrics[metric.name], metric.digits
        median, std = (None, None) if entry is None else (entry.median, entry.std)
        lines.append(f"| {metric.heading()} | {fmt(summary_mean(record.metrics, metric.name), digits)} | "
                     f"{fmt(median, digits)} | {fmt(std, digits)} | "
                     f"{fmt(summary_mean(record.baseline.scores, metric.name), digits)} |")
    if record.baseline.scores is None:
        lines += ["", f"Ciphertext baseline unavailable: {record.baseline.unavailable}."]
    mirror = mirror_note(record.metrics)
    if mirror:
        lines += ["", mirror]
    lines += ["", control_note(record)]
    note = lpips_note(record)
    if note:
        lines += ["", note]
    lines += ["", "| cipher | key space (bits) | separable (bits) | key reuse | "
              "accuracy: plain model, plain images | accuracy: protected model, encrypted images |",
              "|---|---|---|---|---|---|",
              f"| {cipher.name} | {cipher.key_space_bits:.2f} | {cipher.separable_bits:.2f} | "
              f"{cipher.key_reuse} | {fmt_accuracy(accuracy.plain_model_on_plain)} | "
              f"{fmt_accuracy(accuracy.protected_model_on_encrypted)} |"]
    if accuracy.reason:
        lines += ["", f"Accuracy: {accuracy.reason}."]
    lines += ["", f"Attack `{attack.name}`: training {attack.train_seconds:.1f} s, "
              f"reconstruction {attack.attack_seconds:.1f} s."]
    if attack.facts:
        lines += ["", "| attack fact | value |", "|---|---|"]
        lines += [f"| {name} | {_fact(value)} |" for name, value in attack.facts.items()]
    lines += ["", "![plain, encrypted and restored images](grid.png)", "",
              f"Rows: plain, encrypted, restored (the first {GRID_COLUMNS} target images); "
              "SSIM (wang) under each restored image.", "", CAVEAT, ""]
    return "\n".join(lines)


# -- grids (the seed's Fig. 4) ------------------------------------------------------------------

@dataclass(frozen=True)
class GridRow:
    """One row of a grid: a label, uint8 images ``(N, C, H, W)``, optional captions under them."""

    label: str
    images: torch.Tensor
    captions: Sequence[str] | None = None


@dataclass(frozen=True)
class GridLayout:
    """Pixel geometry of a grid: image ``cell`` size, label column, and each row's top edge.

    Image ``j`` of a row starts at ``x = label_width + j * (cell + GAP)``, ``y = row_tops[i]``;
    a row with captions is ``CAPTION_HEIGHT`` taller; rows are ``GAP`` apart.
    """

    cell: int
    label_width: int
    columns: int
    row_tops: tuple[int, ...]
    width: int
    height: int


def cell_size(side: int) -> int:
    """Grid cell for images of ``side`` pixels: integer upscaling to >= 96, or shrinking to 128."""
    if side >= MAX_CELL:
        return MAX_CELL
    return side * max(1, math.ceil(MIN_CELL / side))


def _font(size: int = FONT_SIZE):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def grid_layout(rows: Sequence[GridRow], columns: int = GRID_COLUMNS) -> GridLayout:
    """Where everything goes: ``columns`` images per row, the label column sized to its text."""
    from PIL import Image, ImageDraw

    count = min([columns, *(len(row.images) for row in rows)]) if rows else 0
    side = max((max(row.images.shape[2:]) for row in rows), default=1)
    cell = cell_size(int(side))
    draw, font = ImageDraw.Draw(Image.new("RGB", (1, 1))), _font()
    label_width = max((draw.multiline_textbbox((0, 0), row.label, font=font)[2] for row in rows), default=0)
    label_width += 2 * PAD
    tops, top = [], 0
    for row in rows:
        tops.append(top)
        top += cell + (CAPTION_HEIGHT if row.captions is not None else 0) + GAP
    width = label_width + count * (cell + GAP) - (GAP if count else 0)
    return GridLayout(cell, label_width, count, tuple(tops), width, max(top - GAP, 1))


def displayable(image: torch.Tensor) -> torch.Tensor:
    """``image`` (C, H, W) as uint8 with 1 or 3 channels, for display only: other dtypes (e.g. a
    format-preserving cipher's integers) are stretched to 0..255, other channel counts show
    their first channel."""
    image = image.detach().cpu()
    if image.shape[0] not in (1, 3):
        image = image[:1]
    if image.dtype != torch.uint8:
        values = image.double()
        low, high = values.min(), values.max()
        image = ((values - low) * (255.0 / max(float(high - low), 1e-12))).round().to(torch.uint8)
    return image


def _tile(image: torch.Tensor, cell: int):
    from PIL import Image

    array = displayable(image).permute(1, 2, 0).numpy()
    tile = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).convert("RGB")
    scale = cell / max(tile.width, tile.height)
    size = (max(1, round(tile.width * scale)), max(1, round(tile.height * scale)))
    return tile.resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)


def grid_image(rows: Sequence[GridRow], columns: int = GRID_COLUMNS):
    """Draw ``rows`` (see :func:`grid_layout`) as a PIL image; images are centred in their cells."""
    from PIL import Image, ImageDraw

    layout = grid_layout(rows, columns)
    canvas = Image.new("RGB", (max(layout.width, 1), layout.height), "white")
    draw, font = ImageDraw.Draw(canvas), _font()
    for row, top in zip(rows, layout.row_tops):
        label_box = draw.multiline_textbbox((0, 0), row.label, font=font)
        draw.multiline_text((PAD, top + (layout.cell - label_box[3]) // 2), row.label, fill="black", font=font)
        for col in range(layout.columns):
            left = layout.label_width + col * (layout.cell + GAP)
            tile = _tile(row.images[col], layout.cell)
            canvas.paste(tile, (left + (layout.cell - tile.width) // 2, top + (layout.cell - tile.height) // 2))
            if row.captions is not None:
                text = row.captions[col]
                width = draw.textlength(text, font=font)
                draw.text((left + (layout.cell - width) / 2, top + layout.cell + 2), text, fill="black", font=font)
    return canvas


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def ssim_caption(value: Any) -> str:
    return f"SSIM {fmt(value)}"


def grid_png(plain: torch.Tensor, encrypted: torch.Tensor, restored: torch.Tensor,
             ssim_values: Sequence[Any], columns: int = GRID_COLUMNS, restored_label: str = "restored") -> bytes:
    """Rows plain / encrypted / restored for the first ``columns`` images; SSIM under each restored."""
    captions = [ssim_caption(v) for v in ssim_values[:columns]]
    rows = [GridRow("plain", plain[:columns]), GridRow("encrypted", encrypted[:columns]),
            GridRow(restored_label, restored[:columns], captions)]
    return png(grid_image(rows, columns))


# -- writing -------------------------------------------------------------------------------------

#: The files :func:`write_run` writes.
RUN_FILES = ("result.json", "report.md", "grid.png")


def write_run(result: RunResult, out_dir: str | os.PathLike) -> Path:
    """Write result.json, report.md and grid.png into ``out_dir`` (each file atomically)."""
    out = Path(out_dir)
    record = result.record
    atomic_write_bytes(out / "grid.png", grid_png(result.plain, result.encrypted, result.restored,
                                                  record.metrics.ssim.values,
                                                  restored_label=f"restored\n({record.attack.name})"))
    atomic_write_text(out / "report.md", report_markdown(record))
    atomic_write_json(out / "result.json", finite(record.to_json()))
    return out


def finite(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


# -- bench: leaderboard.md and index.html ---------------------------------------------------------

def leaderboard_table(document: BenchDocument) -> tuple[list[str], list[list[str]]]:
    """The leaderboard of a bench document as headers and rows of text (markdown, HTML, terminal)."""
    attacks = document.attacks
    headers = ["cipher", "verdict", "key space (bits)", "separable (bits)", "accuracy plain/plain",
               "accuracy protected/encrypted", "no-attack SSIM", "best attack", "best SSIM",
               "best LPIPS", *(f"{a} SSIM" for a in attacks)]
    rows = []
    for row in document.leaderboard:
        accuracy = row.accuracy
        cells = [row.cipher, row.verdict, fmt(row.key_space_bits, 2), fmt(row.separable_bits, 2),
                 fmt_accuracy(None if accuracy is None else accuracy.plain_model_on_plain),
                 fmt_accuracy(None if accuracy is None else accuracy.protected_model_on_encrypted),
                 fmt(row.baseline_ssim), row.best_attack or "n/a", best_ssim_text(row), fmt(row.best_lpips)]
        for attack in attacks:
            entry = row.attacks.get(attack)
            if entry is None:  # no cell of this cipher and attack
                cells.append("n/a (None)")
            elif entry.status in ("n/a", "error"):
                cells.append(entry.status)
            else:
                cells.append(f"{ssim_up_to_mirror_text(entry.means['ssim'], entry.means.get('ssim_up_to_mirror'))} "
                             f"({entry.threat_model})")
        rows.append(cells)
    return headers, rows


def best_ssim_text(worst: LeaderboardRow | ThreatSummary) -> str:
    """A worst case's best SSIM (a leaderboard row, an audit threat model) with the best SSIM up
    to a left-right mirror where that reads otherwise, naming its attack when it is another."""
    mirror_attack = worst.best_attack_up_to_mirror
    return ssim_up_to_mirror_text(worst.best_ssim, worst.best_ssim_up_to_mirror,
                                  mirror_attack if mirror_attack != worst.best_attack else None)


def _bench_context(document: BenchDocument) -> str:
    first = next(c.result for c in document.cells if c.result is not None)
    dataset = first.dataset
    return (f"{len(document.ciphers)} cipher(s) x {len(document.attacks)} attack(s) on "
            f"`{dataset.name}` {'x'.join(map(str, dataset.image_shape))}, "
            f"{dataset.splits['targets']} target images; preset `{first.config.preset}`; "
            f"seed {first.seed}; device `{first.environment.device}`.")


def bench_notes(document: BenchDocument) -> list[str]:
    """Sentences under the leaderboard: how to read it, missing accuracy and LPIPS, failed cells."""
    notes = ["The best attack is the one whose restorations have the highest mean SSIM (wang); "
             "no-attack SSIM scores the ciphertexts themselves against the plain images; \"up to a "
             "left-right mirror\" is the SSIM with all of an attack's restorations mirrored left-right, "
             "shown where that scores higher."]
    reasons: dict[str, list[str]] = {}
    for row in document.leaderboard:
        accuracy = row.accuracy
        if accuracy is not None and accuracy.reason and (accuracy.plain_model_on_plain is None
                                                         or accuracy.protected_model_on_encrypted is None):
            reasons.setdefault(accuracy.reason, []).append(row.cipher)
    notes += [f"Accuracy ({', '.join(ciphers)}): {reason}." for reason, ciphers in reasons.items()]
    lpips = {note for cell in document.cells if cell.result is not None
             for note in [lpips_note(cell.result)] if note}
    notes += sorted(lpips)
    for cell in document.cells:
        if cell.status == "error":
            notes.append(f"{cell.cipher} vs {cell.attack} failed: {cell.error}")
        elif cell.status == "n/a":
            notes.append(f"{cell.attack} does not apply to {cell.cipher} (n/a, not a failure): {cell.reason}")
        if cell.ignored_params:
            notes.append(f"{cell.cipher} vs {cell.attack} does not take "
                         f"{', '.join(cell.ignored_params)} (given for other cells).")
    return notes


def _cell_rows(document: BenchDocument) -> tuple[list[str], list[list[str]]]:
    headers = ["cipher", "attack", "threat model", *(f"{metric.heading()} (mean)" for metric in METRICS),
               "no-attack SSIM", "time (s)", "report"]
    rows = []
    for cell in document.cells:
        record = cell.result
        if record is None:
            rows.append([cell.cipher, cell.attack, "", cell.status, *[""] * (len(headers) - 4)])
            continue
        rows.append([cell.cipher, cell.attack, record.attack.threat_model,
                     *(fmt(summary_mean(record.metrics, metric.name), metric.digits) for metric in METRICS),
                     fmt(summary_mean(record.baseline.scores, "ssim")), f"{record.seconds:.1f}",
                     f"{cell.folder}/report.md"])
    return headers, rows


def _markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(row) + " |" for row in rows)]


def leaderboard_markdown(document: BenchDocument) -> str:
    """leaderboard.md of a bench: the leaderboard, notes, the grid and every cell."""
    headers, rows = leaderboard_table(document)
    cell_headers, cell_rows = _cell_rows(document)
    for row in cell_rows:
        if row[-1]:
            row[-1] = f"[report]({row[-1]})"
    lines = ["# ppattack bench", "", _bench_context(document), "", SSIM_NOTE, "",
             *_markdown_table(headers, rows), "", *(f"- {note}" for note in bench_notes(document)), "",
             "![plain, encrypted and restored images per cipher and attack](grid.png)", "",
             f"Rows: plain, then per cipher its encrypted images and each attack's restorations (the "
             f"first {GRID_COLUMNS} target images); SSIM (wang) under each restored image.", "",
             "## Every cell", "", *_markdown_table(cell_headers, cell_rows), "", CAVEAT, ""]
    return "\n".join(lines)


_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
.note { color: #555; } pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
"""


def _html_table(headers: list[str], rows: list[list[str]], links: int | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            text = escape(value)
            if index == links and value:
                text = f'<a href="{escape(value)}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def bench_html(document: BenchDocument, grid: bytes) -> str:
    """index.html of a bench: one self-contained page (the grid is inline), no scripts."""
    def inline(text: str) -> str:  # the markdown subset used in the notes: `code` and *emphasis*
        text = escape(text)
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)

    headers, rows = leaderboard_table(document)
    cell_headers, cell_rows = _cell_rows(document)
    image = base64.b64encode(grid).decode("ascii")
    notes = "".join(f"<li>{inline(note)}</li>" for note in bench_notes(document))
    options = escape(json.dumps(finite(document.options), indent=2, default=str))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ppattack bench: {escape(', '.join(document.ciphers))}</title>",
        f"<style>{_HTML_STYLE}</style></head><body>",
        "<h1>ppattack bench</h1>",
        f"<p>{inline(_bench_context(document))}</p>",
        f'<p class="note">{inline(SSIM_NOTE)}</p>',
        "<h2>Leaderboard</h2>", _html_table(headers, rows),
        f"<ul class=\"note\">{notes}</ul>",
        "<h2>Restored images</h2>",
        f"<p class=\"note\">Rows: plain, then per cipher its encrypted images and each attack's "
        f"restorations (the first {GRID_COLUMNS} target images); SSIM (wang) under each restored image.</p>",
        f'<img alt="plain, encrypted and restored images per cipher and attack" src="data:image/png;base64,{image}">',
        "<h2>Every cell</h2>", _html_table(cell_headers, cell_rows, links=len(cell_headers) - 1),
        f"<p>{inline(CAVEAT)}</p>",
        "<h2>Options</h2>", f"<pre>{options}</pre>",
        f'<p class="note">ppattack {escape(document.ppattack_version)}'
        f'{", commit " + escape(document.git_commit[:12]) if document.git_commit else ""}; '
        f'{document.seconds:.0f} s.</p>',
        "</body></html>", ""])
