"""A bench: every cipher attacked by every attack under the same run options, side by side.

Each cell is one :func:`ppattack.harness.run` (trained networks come from the model cache, so a
repeated bench retrains nothing) and keeps its own result folder ``<out>/<cipher>/<attack>/``.
The classifiers depend on the cipher only: a cipher's first cell measures its accuracy and the
cipher's other cells reuse that measurement.
The combined files go next to them; all of them appear together once the bench is done
(:func:`~ppattack.file_io.staged_output`):

- ``bench.json``: the leaderboard and every cell's result document (``schemas/bench.schema.json``);
- ``leaderboard.md``: a row per cipher: key space, accuracy, the best attack's SSIM and LPIPS,
  each attack's SSIM;
- ``grid.png``: the seed's Fig. 4 across ciphers and attacks;
- ``index.html``: all of it on one self-contained page (images inline).

    result = run_bench(["plain", "proposed"], ["fr"], "runs/bench", RunConfig(cipher="*", attack="*", seed=3))
    result.leaderboard[0].best_attack
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from .version import __version__
from .errors import MemoryNeedError, ParameterError, PPAttackError, ShapeError
from .runtime.distributed import gather, init_from_env, local, process_world
from .case import config_options
from .harness import (RunConfig, RunResult, _git_commit, accuracy_inputs, check_run_memory, prepare_data, resolve,
                      run)
from .file_io import atomic_write_bytes, atomic_write_json, atomic_write_text, check_placeable, staged_output
from .metrics import METRICS
from .registry import ATTACKS, CIPHERS, Registry
from .bench_records import AttackEntry, BenchCell, BenchDocument, LeaderboardRow
from .records import Accuracy
from .verdict import VERDICTS, worst_case
from .report import (GRID_COLUMNS, RUN_FILES, GridRow, bench_html, finite, grid_image, leaderboard_markdown,
                     png, ssim_caption, summary_mean, write_run)

log = logging.getLogger(__name__)
#: The files a bench writes next to its cell folders ``<cipher>/<attack>/``.
BENCH_FILES = ("bench.json", "leaderboard.md", "grid.png", "index.html")
#: ``progress(done, total, cipher, attack)`` before each cell.
Progress = Callable[[int, int, str, str], None]


@dataclass(frozen=True)
class BenchResult:
    """The bench's record, the folder its files were written to, and (read from the record)
    bench.json's document, the leaderboard rows and the cells that failed."""

    record: BenchDocument
    out_dir: Path

    @property
    def document(self) -> dict[str, Any]:
        """bench.json's document, as written."""
        return finite(self.record.to_json())

    @property
    def leaderboard(self) -> tuple[LeaderboardRow, ...]:
        return self.record.leaderboard

    @property
    def failures(self) -> list[BenchCell]:
        """Cells that crashed or failed on bad input (not those whose attack does not apply)."""
        return self.record.failures


def split_names(text: str) -> list[str]:
    """``"a, b,,a"`` -> ``["a", "b"]``."""
    names = [part.strip() for part in text.split(",")]
    return list(dict.fromkeys(name for name in names if name))


def expand(names: Iterable[str], registry: Registry) -> list[str]:
    """Check each name against ``registry``; shell wildcards (``*``) expand to the matches."""
    expanded: list[str] = []
    for name in names:
        if any(ch in name for ch in "*?["):
            matches = registry.names(name)
            if not matches:
                raise ParameterError(f"no {registry.kind} matches '{name}' "
                                     f"(`ppattack list {registry.kind}s` shows all)")
            expanded += matches
        else:
            registry.get(name)  # raises with a suggestion when unknown
            expanded.append(name)
    result = list(dict.fromkeys(expanded))
    if not result:
        raise ParameterError(f"a bench needs at least one {registry.kind}")
    return result


def cell_params(config: RunConfig) -> tuple[dict[str, Any], list[str]]:
    """The ``K=V`` parameters this cell takes, and those it does not (taken by other cells)."""
    taken, ignored = {}, []
    for name, value in config.params.items():
        try:
            resolve(replace(config, params={name: value}))
            taken[name] = value
        except ParameterError:
            ignored.append(name)
    return taken, ignored


def check_params_taken(configs: Sequence[RunConfig],
                       params: Mapping[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
    """:func:`cell_params` of every config; a ``K=V`` parameter that no config takes raises
    the error resolving it gives (a typo would otherwise be ignored by every cell)."""
    routed = [cell_params(config) for config in configs]
    for name, value in params.items():
        if all(name in ignored for _, ignored in routed):
            resolve(replace(configs[0], params={name: value}))  # its message
    return routed


def run_bench(ciphers: Sequence[str], attacks: Sequence[str], out_dir: str | Path, template: RunConfig, *,
              recorded: Sequence[str] | None = None, progress: Progress | None = None) -> BenchResult | None:
    """Run the cipher x attack matrix and write its files into ``out_dir``.

    Args:
        ciphers, attacks: registered names (wildcards allowed).
        out_dir: the bench folder; cell results go to ``<cipher>/<attack>/`` inside it.
        template: the run options every cell shares (its cipher and attack are each cell's). A
            ``K=V`` parameter goes to the cells that take it; one that no cell takes is an error.
        recorded: the template's fields that bench.json's ``options`` records
            (:func:`~ppattack.case.config_options`; the command line's: the ones it set).
        progress: called before each cell.

    A cell that fails with a :class:`~ppattack.errors.PPAttackError` (e.g. an attack that
    cannot handle a cipher) is recorded with its message and the bench goes on. Under torchrun
    the cells are spread over the processes (:func:`run_cells`); rank 0 writes the files and
    returns the result, the other ranks return None.
    """
    started = time.time()
    init_from_env()
    ciphers, attacks = expand(ciphers, CIPHERS), expand(attacks, ATTACKS)
    out = Path(out_dir)
    check_placeable(out, [*BENCH_FILES, *(Path(c, a, name) for c in ciphers for a in attacks for name in RUN_FILES)])
    configs = [replace(template, cipher=c, attack=a) for c in ciphers for a in attacks]
    routed = check_params_taken(configs, template.params)
    cell_configs = [replace(config, params=taken) for config, (taken, _) in zip(configs, routed)]
    check_cells_memory(cell_configs)
    outcomes = run_cells(cell_configs, progress)
    if outcomes is None:  # a torchrun rank other than 0: its cells went to rank 0
        return None
    cells: list[BenchCell] = []
    images: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for config, (_, ignored), (status, message, result, rank) in zip(configs, routed, outcomes):
        cells.append(BenchCell(cipher=config.cipher, attack=config.attack, process=rank,
                               folder=None if result is None else f"{config.cipher}/{config.attack}",
                               ignored_params=tuple(ignored), status=status,
                               error=message if status == "error" else None,
                               reason=message if status == "n/a" else None,
                               result=None if result is None else result.record))
        if result is not None:
            images[config.cipher, config.attack] = (result.plain[:GRID_COLUMNS],
                                                    result.encrypted[:GRID_COLUMNS],
                                                    result.restored[:GRID_COLUMNS])
    if not images:
        raise PPAttackError(f"every cell of the bench failed; the first: {cells[0].cipher} vs "
                            f"{cells[0].attack}: {cells[0].error or cells[0].reason}")
    cards = {}  # key spaces of ciphers whose every cell failed
    for config, (taken, _) in zip(configs, routed):
        if config.cipher not in cards and not any(c[0] == config.cipher for c in images):
            cards[config.cipher] = key_space_card(replace(config, params=taken))
    document = BenchDocument(ppattack_version=__version__, git_commit=_git_commit(), ciphers=tuple(ciphers),
                             attacks=tuple(attacks), options=config_options(template, recorded),
                             leaderboard=tuple(leaderboard(cells, ciphers, attacks, cards)), cells=tuple(cells),
                             seconds=time.time() - started)
    grid = png(grid_image(bench_grid_rows(images, cells, ciphers, attacks)))
    with staged_output(out) as staging:  # a failed bench writes nothing
        for (_, _, result, _), cell in zip(outcomes, cells):
            if result is not None:
                write_run(result, staging / cell.folder)
        atomic_write_bytes(staging / "grid.png", grid)
        atomic_write_text(staging / "leaderboard.md", leaderboard_markdown(document))
        atomic_write_text(staging / "index.html", bench_html(document, grid))
        atomic_write_json(staging / "bench.json", finite(document.to_json()))
    return BenchResult(document, out)


def check_cells_memory(configs: Sequence[RunConfig]) -> None:
    """Refuse the bench (MemoryNeedError, :func:`~ppattack.harness.check_run_memory`) when a
    cell's size cannot fit, before any data is read; a cell that fails otherwise says why when
    it runs."""
    for config in configs:
        try:
            check_run_memory(config)
        except MemoryNeedError:
            raise
        except PPAttackError:
            continue


def run_cells(configs: Sequence[RunConfig], progress: Progress | None = None
              ) -> list[tuple[str, str | None, RunResult | None, int]] | None:
    """Run each cell: ``(status, message, result, rank)`` per config, in order. Status "ok"
    (message None), "n/a" (the attack cannot take the cipher: it raised a ParameterError or
    ShapeError, the message says why) or "error" (any other failure: bad data, a crash).

    Under torchrun the cells are spread over the processes (cell i on rank i mod W, each cell
    trained by its rank alone, on its own GPU when there are GPUs) and gathered on rank 0,
    which gets the list; the other ranks get None. A process measures the accuracy of a cipher
    once, in the first of its cells of that cipher that runs (:func:`~ppattack.harness.accuracy_inputs`),
    and hands it to the others.
    """
    processes = process_world()
    accuracies: dict[str, Accuracy] = {}  # accuracy_inputs -> the classifiers' measurement
    for config in configs:  # still one group: rank 0 downloads and decodes, the others then map
        try:
            prepare_data(config)
        except Exception as e:  # noqa: BLE001 -- the cell itself fails again below and says why
            log.debug("preparing the data of %s vs %s failed: %s", config.cipher, config.attack, e)
    mine: dict[int, tuple[str, str | None, RunResult | None, int]] = {}
    with local():
        for index, config in enumerate(configs):
            if index % processes.size != processes.rank:
                continue
            if progress:
                progress(index, len(configs), config.cipher, config.attack)
            try:
                inputs = accuracy_inputs(config)
                result = run(config, accuracy=accuracies.get(inputs))  # the cipher's first cell measures
                accuracies.setdefault(inputs, result.record.accuracy)
                mine[index] = ("ok", None, grid_only(result), processes.rank)
            except MemoryNeedError:  # the size, not the attack: every cell would fail alike
                raise
            except (ParameterError, ShapeError) as e:
                log.info("%s does not apply to %s: %s", config.attack, config.cipher, e)
                mine[index] = ("n/a", str(e), None, processes.rank)
            except torch.cuda.OutOfMemoryError as e:
                log.warning("%s vs %s ran out of GPU memory: %s", config.cipher, config.attack, e)
                torch.cuda.empty_cache()  # the next cell starts with the memory this one held
                mine[index] = ("error", "CUDA out of memory: use a smaller image_size, targets (--limit) or "
                               "classifier_batch, or run this cell alone", None, processes.rank)
            except Exception as e:  # noqa: BLE001 -- a crashing cell is recorded, the bench goes on
                log.warning("%s vs %s failed: %s", config.cipher, config.attack, e)
                message = str(e) if isinstance(e, PPAttackError) else f"{type(e).__name__}: {e}"
                mine[index] = ("error", message, None, processes.rank)
    gathered = gather(mine)
    if gathered is None:
        return None
    merged = {index: outcome for part in gathered for index, outcome in part.items()}
    return [merged[index] for index in range(len(configs))]


def grid_only(result: RunResult) -> RunResult:
    """``result`` keeping only the images a bench draws (the first :data:`GRID_COLUMNS`), so
    that a cell's result is small to hold and to gather from another process."""
    return replace(result, plain=result.plain[:GRID_COLUMNS].clone(),
                   encrypted=result.encrypted[:GRID_COLUMNS].clone(), restored=result.restored[:GRID_COLUMNS].clone())


def key_space_card(config: RunConfig) -> dict[str, Any]:
    """Key space, separable part and key reuse of ``config``'s cipher at the run's image shape."""
    try:
        resolved = resolve(config)
        size = int(resolved.settings["image_size"])
        card = CIPHERS.create(config.cipher, **resolved.cipher_params).card((3, size, size))
        return {name: card[name] for name in ("key_space_bits", "separable_bits", "key_reuse")}
    except PPAttackError:
        return {}


def leaderboard(cells: Sequence[BenchCell], ciphers: Sequence[str], attacks: Sequence[str],
                cards: dict[str, dict[str, Any]] | None = None) -> list[LeaderboardRow]:
    """A row per cipher: the verdict of its worst case (:func:`~ppattack.verdict.worst_case`;
    rows sorted by it, strongest finding first, then in the order given), key space, accuracy,
    the no-attack baseline, the best attack (highest mean SSIM) with its SSIM and LPIPS, the
    highest mean SSIM up to a left-right mirror and its attack (None: no attack measured it),
    and every attack's scores and status (ok, n/a with the reason, error).

    ``cards`` (see :func:`key_space_card`) give the key space of ciphers whose every cell failed.
    """
    rows = []
    for cipher in ciphers:
        own = [cell for cell in cells if cell.cipher == cipher]
        records = [cell.result for cell in own if cell.result is not None]
        first = records[0] if records else None
        accuracy = next((r.accuracy for r in records if r.accuracy.measured), first.accuracy if first else None)
        entries = {cell.attack: attack_entry(cell) for cell in own}
        card = first.cipher.to_json() if first else (cards or {}).get(cipher, {})
        baseline = first.baseline.scores if first else None
        baseline_ssim = summary_mean(baseline, "ssim")
        ran = [attack for attack in attacks if attack in entries and entries[attack].status == "ok"]
        worst = worst_case([entries[attack].score(attack) for attack in ran], baseline_ssim)
        best, mirror = worst.best, worst.best_up_to_mirror
        rows.append(LeaderboardRow(
            cipher=cipher, verdict=worst.verdict, key_space_bits=card.get("key_space_bits"),
            separable_bits=card.get("separable_bits"), key_reuse=card.get("key_reuse"), accuracy=accuracy,
            baseline_ssim=baseline_ssim, baseline_lpips=summary_mean(baseline, "lpips"),
            best_attack=None if best is None else best.attack, best_ssim=None if best is None else best.ssim,
            best_lpips=None if best is None else best.lpips,
            best_attack_up_to_mirror=None if mirror is None else mirror.attack,
            best_ssim_up_to_mirror=None if mirror is None else mirror.ssim_up_to_mirror,
            lpips_unavailable=first.metrics.lpips_unavailable if first else None, attacks=entries))
    return sorted(rows, key=lambda row: VERDICTS.index(row.verdict))  # stable: given order within a rung


def attack_entry(cell: BenchCell) -> AttackEntry:
    """A cell as its leaderboard row lists it: status, threat model, each metric's mean, error
    or reason, and whether the key was recovered (None: the cell did not run)."""
    record = cell.result
    metrics = None if record is None else record.metrics
    return AttackEntry(status=cell.status, threat_model=None if record is None else record.attack.threat_model,
                       means={metric.name: summary_mean(metrics, metric.name) for metric in METRICS},
                       error=cell.error, reason=cell.reason,
                       key_recovered=None if record is None else record.attack.key_recovered)


def bench_grid_rows(images: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                    cells: Sequence[BenchCell], ciphers: Sequence[str], attacks: Sequence[str]) -> list[GridRow]:
    """Rows: plain, then for each cipher its encrypted images and each attack's restorations
    (SSIM under each restored image). Failed cells have no row."""
    ssim_values = {(c.cipher, c.attack): c.result.metrics.ssim.values for c in cells if c.result is not None}
    plain = next(iter(images.values()))[0]
    rows = [GridRow("plain", plain)]
    for cipher in ciphers:
        done = [a for a in attacks if (cipher, a) in images]
        if not done:
            continue
        rows.append(GridRow(f"{cipher}\nencrypted", images[cipher, done[0]][1]))
        for attack in done:
            if not torch.equal(images[cipher, attack][0], plain):
                log.warning("%s vs %s was scored on other target images than the first cell",
                            cipher, attack)
            captions = [ssim_caption(v) for v in ssim_values[cipher, attack][:len(plain)]]
            rows.append(GridRow(f"{cipher}\n{attack}", images[cipher, attack][2], captions))
    return rows
