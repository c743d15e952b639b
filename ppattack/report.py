"""Result files of a run (protocol.md): result.json, report.md and grid.png, written atomically."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import torch

from .harness import RunResult
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text

GRID_COLUMNS = 8
GRID_CELL = 96  # pixels per image in grid.png (images are upscaled with nearest neighbour)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def report_markdown(document: dict[str, Any]) -> str:
    """The side-by-side table a person reads."""
    cipher, attack = document["cipher"], document["attack"]
    metrics, baseline, accuracy = document["metrics"], document["baseline"], document["accuracy"]
    rows = [("SSIM (wang)", "ssim", 3), ("SSIM (skimage-legacy)", "ssim_skimage_legacy", 3),
            ("PSNR (dB)", "psnr", 2)]
    lines = [f"# {cipher['name']} vs {attack['name']}", "",
             f"Dataset `{document['dataset']['name']}` {document['dataset']['image_shape']}, "
             f"{document['dataset']['splits']['targets']} target images; preset "
             f"`{document['config']['preset']}`; threat model `{attack['threat_model']}`; "
             f"device `{document['environment']['device']}`.", "",
             "| metric | restored (mean) | restored (median) | ciphertext baseline (mean) |",
             "|---|---|---|---|"]
    for label, name, digits in rows:
        base = baseline.get(name) or {}
        lines.append(f"| {label} | {_fmt(metrics[name]['mean'], digits)} | "
                     f"{_fmt(metrics[name]['median'], digits)} | {_fmt(base.get('mean'), digits)} |")
    lines.append(f"| LPIPS (AlexNet) | {_fmt((metrics['lpips'] or {}).get('mean'))} | "
                 f"{_fmt((metrics['lpips'] or {}).get('median'))} | "
                 f"{_fmt((baseline.get('lpips') or {}).get('mean'))} |")
    if metrics.get("lpips") is None:
        lines += ["", f"LPIPS unavailable: {metrics.get('lpips_unavailable')}."]
    lines += ["", "| cipher | key space (bits) | separable (bits) | key reuse | "
              "accuracy plain/plain | accuracy protected/encrypted |", "|---|---|---|---|---|---|",
              f"| {cipher['name']} | {cipher['key_space_bits']:.2f} | {cipher['separable_bits']:.2f} | "
              f"{cipher['key_reuse']} | {_fmt(accuracy['plain_model_on_plain'])} | "
              f"{_fmt(accuracy['protected_model_on_encrypted'])} |"]
    if accuracy.get("reason"):
        lines += ["", f"Accuracy: {accuracy['reason']}."]
    lines += ["", f"A cipher that these attacks fail against is *not broken by these attacks*; "
              "that is not a proof of security.", ""]
    return "\n".join(lines)


def grid_png(plain: torch.Tensor, encrypted: torch.Tensor, restored: torch.Tensor,
             ssim_values: list[float], columns: int = GRID_COLUMNS, cell: int = GRID_CELL) -> bytes:
    """Rows plain / encrypted / restored for the first ``columns`` images; SSIM under each restored."""
    from PIL import Image, ImageDraw

    count = min(columns, len(plain))
    label_height = 16
    width = count * cell
    height = 3 * cell + label_height
    canvas = Image.new("RGB", (max(width, 1), height), "white")
    draw = ImageDraw.Draw(canvas)
    for row, batch in enumerate((plain, encrypted, restored)):
        for col in range(count):
            array = batch[col].permute(1, 2, 0).numpy()
            tile = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).convert("RGB")
            tile = tile.resize((cell, cell * tile.height // tile.width or cell), Image.NEAREST)
            canvas.paste(tile.crop((0, 0, cell, cell)), (col * cell, row * cell))
    for col in range(count):
        value = ssim_values[col]
        text = "SSIM inf" if isinstance(value, str) else f"SSIM {value:.3f}"
        draw.text((col * cell + 4, 3 * cell + 2), text, fill="black")
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def write_run(result: RunResult, out_dir: str | os.PathLike) -> Path:
    """Write result.json, report.md and grid.png into ``out_dir`` (each file atomically)."""
    out = Path(out_dir)
    document = result.document
    atomic_write_bytes(out / "grid.png", grid_png(result.plain, result.encrypted, result.restored,
                                                  document["metrics"]["ssim"]["values"]))
    atomic_write_text(out / "report.md", report_markdown(document))
    atomic_write_json(out / "result.json", _finite(document))
    return out


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
