"""fr: feature reconstruction, edge-based (Chang and Case 2020, arXiv 2004.13263).

A. H. Chang, B. M. Case: "Attacks on image encryption schemes for privacy-preserving deep
neural networks" (arXiv 2004.13263, 2020).

- Basic attack (any cipher): fold every component, ``d = min(v, 255 - v)``, which removes any
  negative-positive transform, and output ``2 * d`` (clipped to 255); optionally grey (the
  channel mean, which removes colour shuffling). A cipher that declares
  ``Cipher.component_permutation`` never inverts a component: there is nothing to fold, and
  the fold would only destroy values, so ``solver="auto"`` keeps its ciphertexts as they are
  (plain, the positive control, is then restored exactly; proposed and block-shuffle score
  their ciphertexts' own SSIM).
- Edge-based solver, for ciphers that declare a small per-unit candidate set
  (:meth:`ppattack.Cipher.unit_transforms`: pe 48 per pixel, etc 96 per block, etc-gray 16 per
  block). Every unit's candidates are the inverse transforms of its ciphertext. Units are decided
  in raster order (computed as anti-diagonal wavefronts: a unit needs only its left and upper
  neighbours), each taking the candidate whose border best continues its decided neighbours
  (L1 distance between the facing border lines); then iterated conditional modes re-decides
  every unit against all four neighbours (checkerboard sweeps) until nothing changes.
  Edges cannot tell apart global transforms that change every unit alike (pe: one colour
  permutation and negative-positive pattern for the whole image), so the solution is known only
  up to them. Under ``coa+public`` that global ambiguity is settled per image with colour
  statistics of the attacker's public images (the version whose pixels are most likely under a
  smoothed colour histogram of public images), never with the victim's plaintext; under
  ``coa`` the solver keeps its own frame (the first unit's first candidate).

For etc-gray's (1, H, 3W) ciphertexts the solved image is read as Y | Cb | Cr and converted
back to RGB. Block scrambling is not undone: with etc, the neighbours the solver matches are
the scrambled ones (what the attack does; ``jigsaw`` is the attack that places blocks).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from ppattack.attack import Attack, AttackResult
from ppattack.cipher import UnitTransforms
from ppattack.errors import ParameterError, ShapeError
from ppattack.threat import ThreatView

#: Components (candidates x edge values) solved at once; bounds the solver's memory.
CHUNK_ELEMENTS = 24_000_000
#: Colour levels per channel of the public colour histogram.
HISTOGRAM_LEVELS = 16
#: Public images per chunk of the colour count (their int64 codes are 8 bytes a pixel).
HISTOGRAM_CHUNK = 256


def fold(x: torch.Tensor) -> torch.Tensor:
    """``min(v, 255 - v)`` per component, doubled and clipped to 255 (uint8 in, uint8 out)."""
    folded = torch.minimum(x, 255 - x).to(torch.int16) * 2
    return folded.clamp_(max=255).to(torch.uint8)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Mean over channels, repeated to three channels (removes colour shuffling)."""
    return x.float().mean(dim=1, keepdim=True).round().to(torch.uint8).expand_as(x).contiguous()


# -- units ---------------------------------------------------------------------------------------

def to_units(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, H/s, W/s, C, s, s)`` tiles of side ``size`` (row-major grid)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // size, size, w // size, size).permute(0, 2, 4, 1, 3, 5).contiguous()


def from_units(units: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_units`."""
    n, gh, gw, c, s, _ = units.shape
    return units.permute(0, 3, 1, 4, 2, 5).reshape(n, c, gh * s, gw * s)


def apply_candidate(units: torch.Tensor, transforms: UnitTransforms, t: int) -> torch.Tensor:
    """``transforms.undo`` of candidate ``t`` on a grid of units ``(N, GH, GW, C, s, s)``."""
    flat = units.reshape(-1, *units.shape[3:])
    return transforms.undo(flat, t).reshape(units.shape)


def border_lines(units: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four border lines of units ``(..., C, s, s)`` as float ``(..., C*s)`` (D = C*s values)."""
    u = units.float()
    return {"left": u[..., :, 0].flatten(-2), "right": u[..., :, -1].flatten(-2),
            "top": u[..., 0, :].flatten(-2), "bottom": u[..., -1, :].flatten(-2)}


def candidate_borders(units: torch.Tensor, transforms: UnitTransforms) -> dict[str, torch.Tensor]:
    """Border lines of every candidate of every unit: each float ``(N, GH, GW, D, T)``.

    Candidates come last so that distances reduce over the few line values D in place.
    """
    if units.shape[-1] == 1:  # pixels: all four borders are the pixel itself (one shared tensor)
        pixels = torch.stack([apply_candidate(units, transforms, t).flatten(3).float()
                              for t in range(transforms.count)], dim=-1)
        return dict.fromkeys(("left", "right", "top", "bottom"), pixels)
    lines = [border_lines(apply_candidate(units, transforms, t)) for t in range(transforms.count)]
    return {side: torch.stack([line[side] for line in lines], dim=-1) for side in lines[0]}


def _pick(borders: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
    """The chosen candidate's line: borders ``(..., D, T)``, choice ``(...)`` -> ``(..., D, 1)``."""
    index = choice[..., None, None].expand(*choice.shape, borders.shape[-2], 1)
    return borders.gather(-1, index)


def _distance(candidates: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """L1 distance of every candidate's line ``(..., D, T)`` to a chosen line ``(..., D, 1)``."""
    return (candidates - line).abs_().sum(-2)


def greedy_raster(borders: dict[str, torch.Tensor]) -> torch.Tensor:
    """Raster-order greedy choice (left and upper neighbours), as anti-diagonal wavefronts.

    Returns the chosen candidate per unit, long ``(N, GH, GW)``; the first unit takes candidate 0.
    """
    left, right, top, bottom = borders["left"], borders["right"], borders["top"], borders["bottom"]
    n, gh, gw, _, count = left.shape
    choice = torch.zeros(n, gh, gw, dtype=torch.long, device=left.device)
    for diagonal in range(1, gh + gw - 1):
        rows = torch.arange(max(0, diagonal - gw + 1), min(diagonal, gh - 1) + 1, device=left.device)
        cols = diagonal - rows
        cost = torch.zeros(n, len(rows), count, device=left.device)
        has_left = cols > 0
        if has_left.any():
            r, c = rows[has_left], cols[has_left]
            line = _pick(right[:, r, c - 1], choice[:, r, c - 1])  # (N, k, D, 1)
            cost[:, has_left] += _distance(left[:, r, c], line)
        has_up = rows > 0
        if has_up.any():
            r, c = rows[has_up], cols[has_up]
            line = _pick(bottom[:, r - 1, c], choice[:, r - 1, c])
            cost[:, has_up] += _distance(top[:, r, c], line)
        choice[:, rows, cols] = cost.argmin(-1)
    return choice


def neighbour_cost(borders: dict[str, torch.Tensor], choice: torch.Tensor) -> torch.Tensor:
    """Cost of every candidate of every unit against its four neighbours' current choices.

    Returns float ``(N, GH, GW, T)``.
    """
    left, right, top, bottom = borders["left"], borders["right"], borders["top"], borders["bottom"]
    cost = torch.zeros(*left.shape[:3], left.shape[-1], device=left.device)
    cost[:, :, 1:] += _distance(left[:, :, 1:], _pick(right[:, :, :-1], choice[:, :, :-1]))
    cost[:, :, :-1] += _distance(right[:, :, :-1], _pick(left[:, :, 1:], choice[:, :, 1:]))
    cost[:, 1:] += _distance(top[:, 1:], _pick(bottom[:, :-1], choice[:, :-1]))
    cost[:, :-1] += _distance(bottom[:, :-1], _pick(top[:, 1:], choice[:, 1:]))
    return cost


def icm(borders: dict[str, torch.Tensor], choice: torch.Tensor, iterations: int) -> tuple[torch.Tensor, int]:
    """Iterated conditional modes with checkerboard sweeps; returns (choice, sweeps run)."""
    _, gh, gw = choice.shape
    rows, cols = torch.meshgrid(torch.arange(gh, device=choice.device),
                                torch.arange(gw, device=choice.device), indexing="ij")
    parity = (rows + cols) % 2
    choice = choice.clone()
    for sweep in range(1, iterations + 1):
        changed = False
        for colour in (0, 1):
            cost = neighbour_cost(borders, choice)
            best = cost.argmin(-1)
            better = cost.gather(-1, best[..., None]).squeeze(-1) < cost.gather(-1, choice[..., None]).squeeze(-1)
            update = better & (parity == colour)
            if update.any():
                choice = torch.where(update, best, choice)
                changed = True
        if not changed:
            return choice, sweep
    return choice, iterations


def total_edge_cost(units: torch.Tensor) -> torch.Tensor:
    """Sum of L1 border differences between all neighbouring units: ``(N, GH, GW, C, s, s)`` -> ``(N,)``."""
    lines = border_lines(units)
    horizontal = (lines["right"][:, :, :-1] - lines["left"][:, :, 1:]).abs().sum(dim=(1, 2, 3))
    vertical = (lines["bottom"][:, :-1] - lines["top"][:, 1:]).abs().sum(dim=(1, 2, 3))
    return horizontal + vertical


# -- public statistics ---------------------------------------------------------------------------

def colour_histogram(images: torch.Tensor | Iterable[torch.Tensor], levels: int = HISTOGRAM_LEVELS) -> torch.Tensor:
    """Log-probabilities of quantised colours in uint8 images ``(N, C, H, W)`` (one batch, or
    batches whose counts are summed), add-one smoothed.

    Returns float ``(levels ** C,)``.
    """
    counts = None
    for batch in [images] if isinstance(images, torch.Tensor) else images:
        found = torch.bincount(_colour_codes(batch, levels).flatten(), minlength=levels ** batch.shape[1]).double()
        counts = found if counts is None else counts + found.to(counts.device)
    counts = counts + 1.0
    return (counts / counts.sum()).log().float()


def _colour_codes(images: torch.Tensor, levels: int) -> torch.Tensor:
    q = (images.long() * levels) // 256  # (N, C, H, W)
    weights = levels ** torch.arange(images.shape[1], device=images.device)
    return (q * weights.view(1, -1, 1, 1)).sum(1)  # (N, H, W)


def colour_log_likelihood(images: torch.Tensor, log_prob: torch.Tensor) -> torch.Tensor:
    """Mean log-probability per pixel of each image under :func:`colour_histogram`: ``(N,)``."""
    levels = round(len(log_prob) ** (1 / images.shape[1]))
    return log_prob.to(images.device)[_colour_codes(images, levels)].mean(dim=(1, 2))


# -- the solver ------------------------------------------------------------------------------------

def solve_edges(ciphertexts: torch.Tensor, transforms: UnitTransforms, iterations: int,
                public_log_prob: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The edge-based solver on uint8 ciphertexts ``(N, C, H, W)``; returns (images, facts).

    ``public_log_prob``: a :func:`colour_histogram` of public images in the ciphertexts'
    layout, used to settle the global ambiguity; ``None`` keeps the solver's own frame.
    """
    s = transforms.unit_size
    _, c, h, w = ciphertexts.shape
    if h % s or w % s:
        raise ShapeError(f"fr: image size {h}x{w} is not a multiple of the unit size {s}")
    per_image = transforms.count * (h // s) * (w // s) * c * s * 4
    chunk = max(1, CHUNK_ELEMENTS // per_image)
    outputs, sweeps, changed, ambiguous, settled = [], [], 0, [], []
    for start in range(0, len(ciphertexts), chunk):
        units = to_units(ciphertexts[start:start + chunk], s)
        borders = candidate_borders(units, transforms)
        choice = greedy_raster(borders)
        refined, sweep = icm(borders, choice, iterations)
        sweeps.append(sweep)
        changed += int((refined != choice).sum())
        solved = torch.empty_like(units)
        for t in range(transforms.count):  # gather the chosen candidates
            mask = refined == t
            if mask.any():
                solved[mask] = apply_candidate(units, transforms, t)[mask]
        if public_log_prob is not None:
            solved, count, pick = settle_global(solved, transforms, public_log_prob)
            ambiguous.append(count)
            settled.append(pick)
        outputs.append(from_units(solved))
    facts: dict[str, Any] = {"solver": "edge", "units": transforms.unit, "unit_size": s,
                             "candidates": transforms.count, "icm_sweeps_max": max(sweeps),
                             "icm_changed_units": changed}
    if public_log_prob is not None:
        counts = torch.cat(ambiguous)
        facts["global_ambiguity"] = (f"settled with public colour statistics among "
                                     f"{int(counts.min())}-{int(counts.max())} equivalent versions")
        facts["global_transform"] = torch.cat(settled).tolist()
    else:
        facts["global_ambiguity"] = "unresolved (coa grants no public images: solver's own frame)"
    return torch.cat(outputs), facts


def settle_global(solved: torch.Tensor, transforms: UnitTransforms,
                  log_prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Among the versions ``undo(solved, t)`` (same t for every unit) whose total edge cost equals
    the solution's (the global ambiguity), keep the one most likely under the public colour
    histogram. Returns (units, number of equivalent versions, chosen t) per image."""
    base = total_edge_cost(solved)
    best_units, best_score = solved.clone(), torch.full((len(solved),), -math.inf, device=solved.device)
    best_t = torch.full((len(solved),), -1, dtype=torch.long, device=solved.device)
    count = torch.zeros(len(solved), dtype=torch.long, device=solved.device)
    for t in range(transforms.count):
        version = apply_candidate(solved, transforms, t)
        equivalent = total_edge_cost(version) <= base * (1 + 1e-6) + 1e-3
        score = colour_log_likelihood(from_units(version), log_prob)
        take = equivalent & (score > best_score)
        count += equivalent.long()
        best_units[take] = version[take]
        best_score = torch.where(take, score, best_score)
        best_t = torch.where(take, torch.full_like(best_t, t), best_t)
    return best_units, count, best_t


class FR(Attack):
    """Feature reconstruction: negative-positive fold, or an edge solver for per-unit transforms.

    Chang and Case 2020. Defaults: ``solver="auto"`` (the edge solver when the cipher declares
    per-unit candidates, else nothing when it only moves components, else the fold),
    ``grayscale=False``, ``icm_iterations`` 10 (quick) / 20 (cifar, paper).
    Threat models: ``coa`` (the solver keeps its own frame), ``coa+public`` (public colour
    statistics settle the global ambiguity).
    """

    name = "fr"
    paper = ("Chang and Case: Attacks on image encryption schemes for privacy-preserving deep "
             "neural networks (arXiv 2004.13263, 2020)")
    threat_models = ("coa", "coa+public")
    budgets = {"quick": {"icm_iterations": 10}, "cifar": {}, "paper": {}}  # changes to the defaults

    def __init__(self, *, solver: str = "auto", grayscale: bool = False,
                 icm_iterations: int = 20, **common):
        super().__init__(**common)
        self.store_params(locals())
        if self.solver not in ("auto", "fold", "edge"):
            raise ParameterError(f"fr solver must be auto, fold or edge, got {self.solver!r}")
        if self.icm_iterations < 0:
            raise ParameterError(f"fr icm_iterations must be >= 0, got {self.icm_iterations}")

    def reconstruct(self, view: ThreatView) -> AttackResult:
        cipher = view.cipher
        shape = tuple(view.ciphertexts.shape[1:])
        keyed = tuple(cipher.keyed_shape(tuple(view.plain_shape)))  # after a keyless step, if any
        if shape != keyed:
            raise ShapeError(f"fr needs ciphertexts of the shape the cipher's key acts on, {keyed}, "
                             f"got {shape}")
        transforms = view.cipher.unit_transforms(view.plain_shape)
        if self.solver == "edge" and transforms is None:
            raise ParameterError(f"cipher '{view.cipher.name}' declares no per-unit candidates: "
                                 "use fr with solver=fold")
        if self.solver == "auto" and transforms is None and cipher.component_permutation:
            out = view.ciphertexts.clone()  # no component is ever inverted: nothing to fold
            facts = {"solver": "none", "reason": "the cipher only moves components (nothing to fold)"}
        elif self.solver == "fold" or transforms is None:
            out, facts = fold(view.ciphertexts), {"solver": "fold"}
        else:
            log_prob = None
            if self.threat_model == "coa+public" and view.public_images is not None:
                public = view.public_images  # counted in chunks: it may be large (and file-backed)
                log_prob = colour_histogram(cipher.keyless_step(public[i:i + HISTOGRAM_CHUNK])
                                            for i in range(0, len(public), HISTOGRAM_CHUNK))
            out, facts = solve_edges(view.ciphertexts, transforms, self.icm_iterations, log_prob)
        out = cipher.undo_keyless_step(out)
        return AttackResult(to_gray(out) if self.grayscale else out, facts)
