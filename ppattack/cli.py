"""The ``ppattack`` command line: parsing and printing only; the work is in the library.

Exit status: 0 success; 1 only when ``check`` found a regression; 2 every other failure (bad
usage, bad input, refused sizes, and errors ppattack did not foresee), as one line on stderr
with no traceback unless ``--debug`` is given before the command; 130 interrupted.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Mapping

import click

from .version import __version__
from .runtime.distributed import launched, shutdown, world
from .errors import DataError, PPAttackError, ShapeError
from .records import RunRecord

if TYPE_CHECKING:
    from .audit_records import AuditDocument
    from .bench_records import BenchDocument

log = logging.getLogger("ppattack")

# -- shared options (defined once, stacked on commands) --------------------------------------------

cipher_option = click.option("--cipher", "cipher_name", required=True, metavar="NAME",
                             help="Registered cipher name (see `ppattack list ciphers`).")
param_option = click.option("--param", "params", multiple=True, metavar="K=V",
                            help="Parameter override, repeatable (e.g. block_size=16).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
key_option = click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
                          metavar="KEY.json", help="Key file made by `ppattack keygen`.")


def named_folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An output folder option's value: an empty name is refused (``run --out ''`` meant the
    default folder and ``encrypt -o ''`` the current one: neither is what an empty name says)."""
    if value == "":
        raise click.BadParameter("'' names no folder: give the output folder's name", ctx=ctx, param=param)
    return value


out_dir_option = click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
                              callback=named_folder, metavar="OUTDIR", help="Output folder (created if missing).")


def parse_shape(value: str) -> tuple[int, int, int]:
    """``"3,224,224"`` -> (3, 224, 224): three positive integers, at most 4 channels and
    :data:`~ppattack.keys.MAX_SIDE` pixels a side."""
    from .keys import MAX_SIDE

    if len(value) > 64:
        raise ShapeError(f"--shape must be C,H,W, e.g. 3,224,224 (got {len(value)} characters)")
    try:
        shape = tuple(int(v) for v in value.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) <= 0:
        raise ShapeError(f"--shape must be C,H,W with three positive integers, e.g. 3,224,224 (got {value!r})")
    if shape[0] > 4 or max(shape[1:]) > MAX_SIDE:
        raise ShapeError(f"--shape {value} is beyond the largest image ppattack takes (at most 4 channels "
                         f"and {MAX_SIDE} pixels a side)")
    return shape  # type: ignore[return-value]


def shape_option(default: str | None = None):
    """``--shape C,H,W``: required without a default (click 8.3 ignores ``required`` once
    ``default=None`` is passed, so no default is passed then)."""
    if default is None:
        return click.option("--shape", required=True, metavar="C,H,W", help="Plain image shape.")
    return click.option("--shape", default=default, metavar="C,H,W", help=f"Plain image shape (default {default}).")


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def status(message: str):
    """A spinner on stderr while work runs; on torchrun ranks other than 0, nothing (the
    process group may not be joined yet, so the launcher's RANK decides)."""
    if launched() and os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext(SimpleNamespace(update=lambda *_: None))
    return console(stderr=True).status(message)


# -- the group: turns library errors into one line and exit status 2 --------------------------------

class Interrupted(Exception):
    """SIGINT (Ctrl-C) or SIGTERM stopped a command; its staged outputs were discarded."""


def stop(signum: int, frame: Any) -> None:
    """SIGINT (Ctrl-C) and SIGTERM stop a command (exit status 130, staged outputs discarded);
    another one while it stops is ignored (a second Ctrl-C printed a traceback from the
    interpreter's shutdown, which waits for a batch being read)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


class PPAttackGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:  # noqa: D102
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # before click turns it into Abort and a blank line
            raise Interrupted() from None

    def main(self, args=None, prog_name=None, **extra: Any):  # noqa: D102
        own_process = args is None and threading.current_thread() is threading.main_thread()
        if own_process:  # the process's own command line (not a test's or a caller's)
            signal.signal(signal.SIGINT, stop)
            signal.signal(signal.SIGTERM, stop)
        if isinstance(sys.stdout, io.TextIOWrapper):  # as stderr is: a name that is not UTF-8
            sys.stdout.reconfigure(errors="backslashreplace")  # cannot fail a finished command
        argv = list(sys.argv[1:] if args is None else args)
        if not argv:  # bare `ppattack`: the help, not an error
            argv = ["--help"]
        command_at = next((i for i, a in enumerate(argv) if a in self.commands), len(argv))
        debug = "--debug" in argv[:command_at]  # a group option: only before the command
        extra.pop("standalone_mode", None)
        try:
            code = super().main(argv, prog_name or "ppattack", standalone_mode=False, **extra)
        except (click.exceptions.Abort, Interrupted):
            click.echo("error: interrupted; outputs appear only when a command completes", err=True)
            sys.exit(130)
        except click.ClickException as e:  # usage: never a traceback
            where = e.ctx.command_path if getattr(e, "ctx", None) else "ppattack"
            self._fail(f"{e.format_message()} (see `{where} --help`)", False)
        except PPAttackError as e:
            self._fail(str(e), debug)
        except OSError as e:  # a file the user named cannot be read or written
            where = f": {e.filename}" if e.filename else ""
            self._fail(f"{e.strerror or e}{where}", debug)
        except MemoryError:
            self._fail("out of memory: use a smaller image_size, batch or --limit", debug)
        except Exception as e:  # unforeseen: still one line and 2, since 1 means "a regression"
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            self._fail(f"unexpected {e.__class__.__name__}: {first[:300]} (rerun with "
                       "`ppattack --debug ...` for the traceback and report it)", debug)
        code = code if isinstance(code, int) else 0
        if own_process:  # done: a late signal (while the interpreter shuts down) would only print a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if code == 0:
            shutdown()  # under torchrun: leave the process group together (errors just exit)
        sys.exit(code)


    @staticmethod
    def _fail(message: str, debug: bool) -> None:
        """One line on stderr (the traceback first with --debug) and exit status 2."""
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {message}", err=True)
        sys.exit(2)


@click.group(cls=PPAttackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ppattack")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def cli(debug: bool, verbose: bool) -> None:
    """ppattack: test learnable image encryption against attacks."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, handlers=[OneLineHandler()], force=True)
    logging.getLogger("PIL").setLevel(max(level, logging.INFO))  # --debug: not every PNG chunk
    warnings.showwarning = show_warning


class OneLineHandler(logging.Handler):
    """Each log record as one ``<level>: message`` line on stderr (``warning: ...``), through
    rich's console so that it prints above a running progress display; with --debug an
    exception's traceback follows."""

    def __init__(self) -> None:
        super().__init__()
        self.console = console(stderr=True)

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102
        try:
            message = record.getMessage().replace("\n", " ")
            text = f"{record.levelname.lower()}: {message}"
            if record.exc_info and logging.getLogger().isEnabledFor(logging.DEBUG):
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 -- logging must never raise
            self.handleError(record)


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
    """Python warnings (PIL's DecompressionBombWarning, torch's) as one ``warning:`` line."""
    logging.getLogger("ppattack").warning("%s: %s", category.__name__, message)


# -- list / info ---------------------------------------------------------------------------------------

@cli.command("list")
@click.argument("what", type=click.Choice(["ciphers", "attacks", "datasets", "all"]), default="all")
@json_option
def list_command(what: str, as_json: bool) -> None:
    """List installed ciphers, attacks and datasets."""
    from .data import DATASET_NAMES
    from .registry import ATTACKS, CIPHERS

    rows: dict[str, list[dict[str, Any]]] = {}
    if what in ("ciphers", "all"):
        rows["ciphers"] = [{"name": n, "key_reuse": c.key_reuse, "summary": c.summary()}
                           for n, c in ((n, CIPHERS.get(n)) for n in CIPHERS.names())]
    if what in ("attacks", "all"):
        rows["attacks"] = [{"name": n, "threat_models": list(a.threat_models), "summary": a.summary()}
                           for n, a in ((n, ATTACKS.get(n)) for n in ATTACKS.names())]
    if what in ("datasets", "all"):
        rows["datasets"] = [{"name": n} for n in DATASET_NAMES]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    out = console()
    for section, items in rows.items():
        table = Table(title=section, title_justify="left")
        for column in items[0] if items else ["name"]:
            table.add_column(column)
        for item in items:
            table.add_row(*(", ".join(v) if isinstance(v, list) else str(v) for v in item.values()))
        out.print(table)


def cipher_card(cipher_name: str, params: tuple[str, ...], shape: tuple[int, int, int]) -> dict[str, Any]:
    """``Cipher.card`` of the named cipher, key-space bits rounded to 2 decimals for display."""
    from .params import parse_assignments
    from .registry import create_cipher

    card = create_cipher(cipher_name, **parse_assignments(params)).card(shape)
    return {**card, "key_space_bits": round(card["key_space_bits"], 2),
            "separable_bits": round(card["separable_bits"], 2)}


@cli.command()
@cipher_option
@param_option
@shape_option(default="3,224,224")
@json_option
def info(cipher_name: str, params: tuple[str, ...], shape: str, as_json: bool) -> None:
    """Show a cipher's card: key space, separable part, invertibility, key reuse."""
    card = cipher_card(cipher_name, params, parse_shape(shape))
    if as_json:
        click.echo(json.dumps(card, indent=2))
        return
    from rich.table import Table

    table = Table(show_header=False, title=f"cipher {card['cipher']}", title_justify="left")
    for name, value in card.items():
        text = f"{value:.2f}" if isinstance(value, float) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        table.add_row(name, text)
    console().print(table)


# -- keys and files ------------------------------------------------------------------------------------

@cli.command()
@cipher_option
@param_option
@shape_option()
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Deterministic key (tests only); default: OS CSPRNG.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), metavar="KEY.json")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def keygen(cipher_name: str, params: tuple[str, ...], shape: str, seed: int | None, out_path: str,
           force: bool) -> None:
    """Generate a key and write it (permissions 0600). The key is never printed. Missing
    folders above it are created, as for every command's outputs, only once it is written."""
    from . import key_parsing
    from .file_io import check_placeable, staged_output
    from .keys import save_key
    from .params import parse_assignments
    from .registry import create_cipher

    out = Path(out_path)
    if not out.name or out.name == ".." or out_path.endswith(("/", os.sep)):  # "key.json/" names a folder
        raise DataError(f"-o {out_path!r} names no file: give the key file's name, e.g. -o key.json")
    if out.exists() and not force:
        raise DataError(f"{out_path} exists: refusing to overwrite a key (data encrypted with it "
                        "would be lost); pass --force or choose another file")
    check_placeable(out.parent, [out.name])
    cipher = create_cipher(cipher_name, **parse_assignments(params))
    key = cipher.generate_key(parse_shape(shape), seed=seed)
    with staged_output(out.parent) as staging:  # no new folder is left behind by a failure
        save_key(key, staging / out.name)
        size = (staging / out.name).stat().st_size
        if size > key_parsing.MAX_KEY_BYTES:  # encrypt and decrypt would refuse to read it
            raise DataError(f"the key for shape {shape} would be a file of {size >> 20} MiB, more than ppattack "
                            f"reads ({key_parsing.MAX_KEY_BYTES >> 20} MiB): use a larger block_size or smaller images")
    click.echo(f"wrote {cipher.name} key for shape {','.join(map(str, key.shape))} to {out_path} "
               f"({cipher.key_space_bits(key.shape):.2f} key-space bits)", err=True)


def _transform_files(key_path: str, inputs: tuple[str, ...], out_dir: str, decrypt: bool,
                     force: bool = False) -> None:
    from .files import transform_files
    from .key_parsing import load_key

    written = transform_files(load_key(key_path), [Path(p) for p in inputs], Path(out_dir), decrypt=decrypt,
                              force=force, warn=lambda message: click.echo(f"warning: {message}", err=True))
    click.echo(f"wrote {len(written)} image(s) to {out_dir}", err=True)


@cli.command()
@key_option
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@out_dir_option
def encrypt(key_path: str, inputs: tuple[str, ...], out_dir: str) -> None:
    """Encrypt image files or folders to PNG files in OUTDIR (same names, folder structure kept)."""
    _transform_files(key_path, inputs, out_dir, decrypt=False)


@cli.command()
@key_option
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@out_dir_option
@click.option("--force", is_flag=True, help="Decrypt files whose cipher or key fingerprint is not the key's.")
def decrypt(key_path: str, inputs: tuple[str, ...], out_dir: str, force: bool) -> None:
    """Decrypt PNG ciphertexts made by `ppattack encrypt` into OUTDIR (refusing files made with
    another cipher or key unless --force)."""
    _transform_files(key_path, inputs, out_dir, decrypt=True, force=force)


# -- run -----------------------------------------------------------------------------------------------

# The options `run`, `bench` and `audit` share (everything but what to attack and where to write).
CASE_OPTIONS = (
    click.option("--dataset", default=None, metavar="D", help="samples | cifar10 | cifar100 | folder:PATH (default: the preset's)."),
    click.option("--data-root", default=None, type=click.Path(file_okay=False), help="Where cifar10/100 live (or are downloaded to)."),
    click.option("--preset", default="quick", show_default=True, help="quick | cifar | paper."),
    param_option,
    click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]."),
    click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the victim key and of training."),
    click.option("--limit", type=click.IntRange(min=1), default=None, help="Attack only the first N target images."),
    click.option("--no-accuracy", is_flag=True, help="Skip training/evaluating the protected classifier."),
    click.option("--lpips-weights", default=None, type=click.Path(exists=True, dir_okay=False), metavar="PATH",
                 help="torchvision's AlexNet checkpoint (alexnet-owt-7be5be79.pth) for LPIPS "
                      "(default: $PPATTACK_LPIPS_WEIGHTS, then the torch hub cache; offline "
                      "without it, LPIPS is reported unavailable)."),
)
# `run` and `bench` choose one threat model and the control; an audit runs them all.
RUN_OPTIONS = CASE_OPTIONS + (
    click.option("--threat", default=None, metavar="MODEL", help="Threat model, if the attack supports several (e.g. kpa)."),
    click.option("--control", is_flag=True, help="Also run the positive control: the same attack on `plain` "
                 "(same data, preset and seed), reported in result.json and report.md."),
)


def check_writable(folder: Path, dataset: str | None = None, data_root: str | None = None,
                   params: Mapping[str, Any] | None = None) -> None:
    """Fail now, with exit status 2, when ``folder`` could not be created or written later, or
    when it overlaps the folder of a ``folder:PATH`` ``dataset`` (the results would land
    among its images) or the ``--data-root`` (where datasets are read and downloaded). A
    ``dataset`` in ``params`` (``--param dataset=...``) wins over ``dataset``, as in the run."""
    from .file_io import check_apart, user_path

    dataset = (params or {}).get("dataset", dataset)

    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"cannot write results to {folder}: {existing} is not a writable folder")
    if isinstance(dataset, str) and dataset.startswith("folder:") and dataset[len("folder:"):].strip():
        check_apart(folder, {"dataset": user_path(dataset[len("folder:"):])})
    if data_root:
        check_apart(folder, {"data root": user_path(data_root)})


def run_options(command, options=RUN_OPTIONS):
    """Stack ``options`` on a command; it receives them as keyword arguments."""
    for option in reversed(options):
        command = option(command)
    return command


def case_options(command):
    """Stack :data:`CASE_OPTIONS` (the run options without --threat and --control)."""
    return run_options(command, CASE_OPTIONS)


def run_config_values(options: dict[str, Any]) -> dict[str, Any]:
    """:class:`~ppattack.harness.RunConfig` keyword arguments from the :data:`RUN_OPTIONS` values."""
    from .params import parse_assignments

    values = dict(options)
    values["params"] = parse_assignments(values["params"])
    values["accuracy"] = not values.pop("no_accuracy")
    return values


@cli.command()
@cipher_option
@click.option("--attack", "attack_name", required=True, metavar="NAME", help="Registered attack name.")
@run_options
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), callback=named_folder, help="Result folder (default runs/<cipher>-<attack>-<time>).")
def run(cipher_name: str, attack_name: str, out_dir: str | None, **options: Any) -> None:
    """Attack a cipher on a dataset and write result.json, report.md and grid.png."""
    from .file_io import check_placeable, staged_output
    from .harness import RunConfig, run as run_case
    from .report import RUN_FILES, write_run

    config = RunConfig(cipher=cipher_name, attack=attack_name, **run_config_values(options))
    out = Path(out_dir or f"runs/{cipher_name}-{attack_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_writable(out, options["dataset"], options["data_root"], config.params)  # before the work
    check_placeable(out, RUN_FILES)
    with status(f"running {attack_name} against {cipher_name} ..."):
        result = run_case(config)
    if not world().is_main:  # under torchrun, rank 0 writes the result
        return
    with staged_output(out) as staging:
        write_run(result, staging)
    print_summary(result.record, out)


@cli.command()
@click.option("--ciphers", required=True, metavar="A,B,...", help="Comma-separated cipher names (wildcards allowed, e.g. '*').")
@click.option("--attacks", required=True, metavar="X,Y,...", help="Comma-separated attack names (wildcards allowed).")
@run_options
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), callback=named_folder, help="Bench folder (default runs/bench-<time>).")
def bench(ciphers: str, attacks: str, out_dir: str | None, **options: Any) -> None:
    """Attack every cipher with every attack; write bench.json, leaderboard.md, grid.png and
    index.html (plus each cell's result folder) and print the leaderboard.

    A cell that fails (e.g. an attack that cannot take a cipher's ciphertexts) is reported in
    the leaderboard and its notes; the exit status is 2 only when every cell fails."""
    from .bench import run_bench, split_names
    from .harness import RunConfig

    out = Path(out_dir or f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    values = run_config_values(options)
    check_writable(out, options["dataset"], options["data_root"], values["params"])
    template = RunConfig(cipher="*", attack="*", **values)  # each cell sets its cipher and attack
    with status("bench ...") as spinner:
        result = run_bench(split_names(ciphers), split_names(attacks), out, template, recorded=tuple(values),
                           progress=lambda i, n, c, a: spinner.update(f"bench [{i + 1}/{n}]: {a} against {c} ..."))
    if result is not None:  # None on torchrun ranks other than 0
        print_leaderboard(result.record, out)


@cli.command()
@cipher_option
@case_options
@click.option("--attacks", default="*", show_default=True, metavar="X,Y,...",
              help="The ensemble: comma-separated attack names (wildcards allowed); default every registered attack.")
@click.option("--budget", type=click.Choice(["quick", "cpu", "paper"]), default="quick", show_default=True,
              help="What the audit spends: quick / cpu (attacks at their quick budget, the quick "
                   "preset's ViT for accuracy, at most 64 / 256 targets, 2000 / 10000 training images) "
                   "or paper (the preset's own values).")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), callback=named_folder, help="Audit folder (default runs/audit-<cipher>-<time>).")
def audit(cipher_name: str, attacks: str, budget: str, out_dir: str | None, **options: Any) -> None:
    """Run every registered attack under every threat model it supports (with positive
    controls) and report the worst case per threat model: audit.json, audit.md, audit.png,
    index.html, plus every case's result folder."""
    from .audit import run_audit
    from .bench import split_names
    from .harness import RunConfig

    out = Path(out_dir or f"runs/audit-{cipher_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    values = run_config_values(options)
    check_writable(out, options["dataset"], options["data_root"], values["params"])
    template = RunConfig(cipher=cipher_name, attack="*", **values)  # each case sets its attack
    with status(f"auditing {cipher_name} ...") as spinner:
        result = run_audit(cipher_name, out, template, budget=budget, attacks=split_names(attacks),
                           recorded=tuple(values),
                           progress=lambda i, n, a, t: spinner.update(f"audit [{i + 1}/{n}]: {a} ({t}) against {cipher_name} ..."))
    print_audit(result.record, out)


@cli.command()
@click.option("--attack", "attack_name", required=True, metavar="NAME", help="An attack under coa+public or coa.")
@cipher_option
@param_option
@click.option("--ciphertexts", "ciphertexts_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Ciphertext images (PNG or another lossless format), one size, from any implementation.")
@click.option("--public", "public_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="The attacker's own plain images of the ciphertexts' size.")
@out_dir_option
@click.option("--truth", "truth_dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Plain images under the ciphertexts' names: score the restorations (OUTDIR/report/).")
@click.option("--preset", default="quick", show_default=True, help="quick | cifar | paper (the attack's budget).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="The run's seed: the attack gets the seed that `run --seed` gives it.")
@click.option("--lpips-weights", default=None, type=click.Path(exists=True, dir_okay=False), metavar="PATH",
              help="torchvision's AlexNet checkpoint for LPIPS (with --truth).")
def restore(attack_name: str, cipher_name: str, params: tuple[str, ...], ciphertexts_dir: str, public_dir: str,
            out_dir: str, truth_dir: str | None, **options: Any) -> None:
    """Attack a folder of ciphertext images and write the restored images under the same names."""
    from .params import parse_assignments
    from .restore import restore_files

    out = Path(out_dir)
    check_writable(out)
    with status(f"restoring with {attack_name} against {cipher_name} ..."):
        done = restore_files(attack_name, cipher_name, Path(ciphertexts_dir), Path(public_dir), out,
                             params=parse_assignments(params), truth_dir=Path(truth_dir) if truth_dir else None,
                             **options)
    click.echo(f"wrote {len(done.written)} restored image(s) to {out}", err=True)
    if done.result is not None:
        print_summary(done.result.record, out / "report")


def print_audit(document: AuditDocument, out: Path) -> None:
    from rich.table import Table

    from .audit import audit_context, summary_table

    headers, rows = summary_table(document.threat_models)
    out_console = console()
    if out_console.is_terminal:
        table = Table(title=f"ppattack audit: {document.cipher.name}", title_justify="left")
        for header in headers:
            table.add_column(header)
        for row in rows:
            table.add_row(*row)
        out_console.print(table)
    else:  # a pipe or file: the markdown table, one line per threat model
        click.echo("| " + " | ".join(headers) + " |")
        click.echo("|" + "---|" * len(headers))
        for row in rows:
            click.echo("| " + " | ".join(row) + " |")
    for line in audit_context(document):
        out_console.print(line, markup=False)
    out_console.print(f"results in {out}/ (audit.json, audit.md, audit.png, index.html)")


def print_leaderboard(document: BenchDocument, out: Path) -> None:
    """The leaderboard: a rich table on a terminal, the markdown table otherwise."""
    from rich.table import Table

    from .report import bench_notes, leaderboard_table

    headers, rows = leaderboard_table(document)
    out_console = console()
    if out_console.is_terminal:
        table = Table(title="ppattack bench", title_justify="left")
        for index, header in enumerate(headers):
            table.add_column(header, justify="left" if index == 0 else "right")
        for row in rows:
            table.add_row(*row)
        out_console.print(table)
    else:
        click.echo("| " + " | ".join(headers) + " |")
        click.echo("|" + "---|" * len(headers))
        for row in rows:
            click.echo("| " + " | ".join(row) + " |")
    for note in bench_notes(document)[1:]:
        click.echo(f"- {note}")
    click.echo(f"results in {out}/ (bench.json, leaderboard.md, grid.png, index.html)")


def print_summary(record: RunRecord, out: Path) -> None:
    from rich.table import Table

    from .metrics import METRICS
    from .report import control_note, fmt, fmt_accuracy, mirror_note, summary_mean

    metrics, accuracy = record.metrics, record.accuracy
    table = Table(title=f"{record.cipher.name} vs {record.attack.name} "
                        f"({record.attack.threat_model})", title_justify="left")
    for column in ("metric", "restored", "ciphertext baseline"):
        table.add_column(column)
    for metric in METRICS:
        table.add_row(metric.heading(), fmt(summary_mean(metrics, metric.name), metric.digits),
                      fmt(summary_mean(record.baseline.scores, metric.name), metric.digits))
    table.add_row("key space bits", f"{record.cipher.key_space_bits:.2f}", "")
    table.add_row("accuracy: protected model, encrypted images",
                  fmt_accuracy(accuracy.protected_model_on_encrypted), "")
    table.add_row("accuracy: plain model, plain images", fmt_accuracy(accuracy.plain_model_on_plain), "")
    out_console = console()
    out_console.print(table)
    if accuracy.reason:
        out_console.print(f"Accuracy: {accuracy.reason}", markup=False)
    if metrics.lpips_unavailable:
        out_console.print(f"LPIPS unavailable: {metrics.lpips_unavailable}", markup=False)
    if metrics.ssim_up_to_mirror is not None and metrics.ssim_up_to_mirror.mirrored:
        out_console.print(mirror_note(metrics), markup=False)
    if record.control.ran:
        out_console.print(control_note(record), markup=False)
    out_console.print(f"results in {out}/ (result.json, report.md, grid.png)")


@cli.command()
@click.option("--baseline", "baseline_path", required=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="Baseline TOML with the bounds to hold.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), callback=named_folder,
              help="Keep the results of runs the check had to make here.")
@click.argument("result_dirs", nargs=-1, type=click.Path(file_okay=False))
def check(baseline_path: str, out_dir: str | None, result_dirs: tuple[str, ...]) -> int:
    """Security regression check: exit 1 when a cipher got weaker or an attack stopped working
    (``[[bound]]`` cases, and ``[[audit]]`` verdicts per threat model)."""
    from rich.table import Table

    from .audit_check import check_audits, has_case_bounds, load_audit_bounds
    from .check import check as check_bounds, load_baseline
    from .file_io import staged_output
    from .report import fmt

    audits = load_audit_bounds(baseline_path)
    bounds = load_baseline(baseline_path) if has_case_bounds(baseline_path) or not audits else []
    if audits and result_dirs:  # they were silently ignored: the audits ran anyway
        raise DataError(f"result folders answer [[bound]] entries only, and {baseline_path} holds {len(audits)} "
                        "[[audit]] entries, which run their audits: leave the folders out, or put the "
                        "[[bound]] entries in a baseline of their own")
    if out_dir:
        check_writable(Path(out_dir))
        for bound in bounds:  # the kept runs never land among the data
            check_writable(Path(out_dir), bound.case.dataset, bound.case.data_root, dict(bound.case.params))
        for entry in audits:
            check_writable(Path(out_dir), entry.options.get("dataset"), entry.options.get("data_root"),
                           entry.options.get("params"))
    # the runs the check makes are kept in --out only once every bound was measured
    with status("checking bounds ..."), \
            (staged_output(out_dir) if out_dir else contextlib.nullcontext(None)) as kept:
        verdicts = check_bounds(bounds, result_dirs, kept) if bounds else []
        audit_verdicts = check_audits(audits, kept)
    failed = sum(not v.ok for v in verdicts) + sum(not v.ok for v in audit_verdicts)
    total = len(verdicts) + len(audit_verdicts)
    if not world().is_main:  # under torchrun, rank 0 reports
        return 1 if failed else 0
    out = console()
    if verdicts:
        table = Table(title=f"ppattack check: {baseline_path}", title_justify="left")
        for column in ("case", "bound", "limit", "measured", "margin", "status"):
            table.add_column(column)
        for v in verdicts:
            table.add_row(v.label(), v.bound, f"{v.limit:.3f}", fmt(v.measured),
                          fmt(v.margin), "ok" if v.ok else "REGRESSION")
        out.print(table)
    if audit_verdicts:
        table = Table(title=f"ppattack check (audits): {baseline_path}", title_justify="left")
        for column in ("audit", "threat model", "bound", "limit", "measured", "status"):
            table.add_column(column)
        for v in audit_verdicts:
            table.add_row(v.bound.label(), v.threat, v.kind, fmt(v.limit) if not isinstance(v.limit, bool) else str(v.limit).lower(),
                          fmt(v.measured) if not isinstance(v.measured, bool) else str(v.measured).lower(),
                          "ok" if v.ok else "REGRESSION")
        out.print(table)
    out.print(f"{failed} regression(s) in {total} bound(s)" if failed else
              f"all {total} bound(s) hold (not broken by these attacks, within the bounds)")
    return 1 if failed else 0


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
