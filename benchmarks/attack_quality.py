"""Attacks of the seed paper: SSIM (wang, skimage-legacy) and PSNR of fr, gan, sia-gan and itn.

    python benchmarks/attack_quality.py [--dataset folder:../shared/data/cifar10-jpeg]
        [--ciphers plain,pe,le,ele,etc,proposed] [--attacks fr,gan,sia-gan,itn]
        [--targets 100] [--max-train 10000] [--budget cpu|cifar] [--json runs/attack-quality.json]
        [--write-results]

Every case is one ``ppattack`` run (cifar preset: 32x32, block 4) through the harness, so each
attack gets only its threat model's view: fr ``coa+public`` (public colour statistics settle
its global ambiguity), gan / sia-gan / itn ``coa+public``. The ciphertext itself scored against
the plain image is the "no attack" baseline; the ``plain`` row is the positive control.

``--budget cpu`` (default) is a reduced budget for a 2-core CPU (the steps below, fewer target
and public images than the paper); ``--budget cifar`` uses the cifar preset as it is. Results
are appended case by case to the JSON file, so an interrupted run resumes where it stopped.
``--write-results`` replaces this benchmark's section of benchmarks/RESULTS.md with the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import ppattack  # noqa: E402
from ppattack.harness import RunConfig, run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASET = "folder:../shared/data/cifar10-jpeg"
CIPHERS = ("plain", "pe", "le", "ele", "etc", "proposed")
ATTACKS = ("fr", "gan", "sia-gan", "itn")
#: Reduced training budgets for a 2-core CPU (--budget cpu); the cifar preset's otherwise.
CPU_BUDGET = {
    "fr": {},
    "itn": {"width": 16, "steps": 600, "batch_size": 32, "eval_every": 200},
    "gan": {"steps": 600, "batch_size": 32, "d_width": 32},
    "sia-gan": {"steps": 300, "batch_size": 32, "g_width": 32, "d_width": 16},
}
#: Extra rows: the block-wise generators of the block ciphers (B = 4) on plain, which has no
#: block size of its own (its default generator is pixel-wise, as for pe); and fr's basic fold
#: on pe (colour and grey), the attack the published pe figure measured.
VARIANTS = {("plain", "gan"): [{"block_size": 4}], ("plain", "sia-gan"): [{"block_size": 4}],
            ("pe", "fr"): [{"solver": "fold"}, {"solver": "fold", "grayscale": True}]}
THREAT = {"fr": "coa+public", "gan": "coa+public", "sia-gan": "coa+public", "itn": "coa+public"}
#: Published or reproduced figures quoted in attacks.md (CIFAR-10).
PUBLISHED = {
    ("pe", "fr"): "SSIM median ~0.31 (reproductions, basic fold)",
    ("le", "fr"): "SSIM median ~0.05 (reproductions, basic fold)",
    ("ele", "fr"): "SSIM median ~0.02 (reproductions, basic fold)",
    ("etc", "fr"): "SSIM median ~0.04 (reproductions, basic fold)",
    ("le", "gan"): "SSIM ~0.66 (reproductions)",
    ("le", "sia-gan"): "LPIPS 0.091 (ciphertext 0.304)",
    ("pe", "sia-gan"): "LPIPS 0.163",
    ("ele", "sia-gan"): "not recovered",
    ("etc", "sia-gan"): "not recovered",
    ("plain", "itn"): "sanity: SSIM > 0.9",
}
SECTION = "## Attacks of the seed paper (SSIM / PSNR)"


def case_key(cipher: str, attack: str, variant: dict | None = None) -> str:
    return f"{cipher}/{attack}" + (json.dumps(variant, sort_keys=True) if variant else "")


def label(row: dict) -> str:
    variant = row.get("variant")
    return row["attack"] + (" (" + ", ".join(f"{k}={v}" for k, v in variant.items()) + ")" if variant else "")


def run_case(cipher: str, attack: str, args: argparse.Namespace, variant: dict | None = None) -> dict:
    params = dict(CPU_BUDGET[attack]) if args.budget == "cpu" else {}
    params["max_train"] = args.max_train
    params.update(variant or {})
    config = RunConfig(cipher=cipher, attack=attack, dataset=args.dataset, preset="cifar",
                       params=params, seed=args.seed, limit=args.targets, accuracy=False,
                       threat=THREAT[attack], device=args.device)
    started = time.time()
    document = run(config).document
    metric = lambda doc, name, stat: (doc.get(name) or {}).get(stat)  # noqa: E731
    row = {"cipher": cipher, "attack": attack, "variant": variant, "threat": document["attack"]["threat_model"],
           "params": document["attack"]["params"], "seconds": time.time() - started,
           "train_seconds": document["attack"]["train_seconds"],
           "facts": {k: v for k, v in document["attack"]["facts"].items()
                     if k not in ("history", "global_transform")},
           "splits": document["dataset"]["splits"]}
    for side, doc in (("restored", document["metrics"]), ("baseline", document["baseline"])):
        for name in ("ssim", "ssim_skimage_legacy", "psnr"):
            for stat in ("mean", "median"):
                row[f"{side}_{name}_{stat}"] = metric(doc, name, stat)
    return row


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    lines = ["| cipher | attack | SSIM wang mean / median | SSIM legacy mean / median | PSNR dB | "
             "ciphertext baseline (SSIM wang / legacy / PSNR) | train s | published (attacks.md) |",
             "|---|---|---|---|---|---|---|---|"]
    order = {name: i for i, name in enumerate(CIPHERS)}
    attack_order = {name: i for i, name in enumerate(ATTACKS)}
    for row in sorted(rows, key=lambda r: (order.get(r["cipher"], 99), attack_order.get(r["attack"], 99),
                                           bool(r.get("variant")))):
        lines.append(
            f"| {row['cipher']} | {label(row)} | {fmt(row['restored_ssim_mean'])} / "
            f"{fmt(row['restored_ssim_median'])} | {fmt(row['restored_ssim_skimage_legacy_mean'])} / "
            f"{fmt(row['restored_ssim_skimage_legacy_median'])} | {fmt(row['restored_psnr_mean'], 2)} | "
            f"{fmt(row['baseline_ssim_mean'])} / {fmt(row['baseline_ssim_skimage_legacy_mean'])} / "
            f"{fmt(row['baseline_psnr_mean'], 2)} | {row['train_seconds']:.0f} | "
            f"{PUBLISHED.get((row['cipher'], row['attack']), '')} |")
    return "\n".join(lines)


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"{torch.get_num_threads()} torch threads; torch {torch.__version__}; Python {platform.python_version()}")


def write_results(markdown: str, notes: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    text = path.read_text()
    start = text.index(SECTION) + len(SECTION)
    end = text.find("\n## ", start)
    end = len(text) if end < 0 else end
    path.write_text(text[:start] + "\n\n" + notes.strip() + "\n\n" + markdown + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=DATASET)
    parser.add_argument("--ciphers", default=",".join(CIPHERS))
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--max-train", type=int, default=10000, help="train images decoded (half are public)")
    parser.add_argument("--budget", choices=("cpu", "cifar"), default="cpu")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(ROOT / "runs" / "attack-quality.json"))
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--notes", default=None, help="a file with the text to put above the table")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dataset.startswith("folder:"):  # relative to the project root, as documented
        folder = Path(args.dataset[len("folder:"):])
        args.dataset = "folder:" + str(folder if folder.is_absolute() else (ROOT / folder).resolve())
    installed = set(ppattack.list_ciphers())
    ciphers = [c for c in args.ciphers.split(",") if c]
    missing = [c for c in ciphers if c not in installed]
    if missing:
        print(f"not installed, skipped: {', '.join(missing)}", file=sys.stderr)
    out = Path(args.json)
    rows = json.loads(out.read_text()) if out.exists() else []
    done = {case_key(r["cipher"], r["attack"], r.get("variant")) for r in rows}
    cases = [(c, a, None) for c in ciphers if c in installed for a in args.attacks.split(",") if a]
    cases += [(c, a, v) for c, a, _ in list(cases) for v in VARIANTS.get((c, a), [])]
    for cipher, attack, variant in cases:
        if case_key(cipher, attack, variant) in done:
            continue
        print(f"{cipher} / {attack} {variant or ''} ...", file=sys.stderr, flush=True)
        row = run_case(cipher, attack, args, variant)
        rows.append(row)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1))
        print(f"  SSIM {fmt(row['restored_ssim_mean'])} (baseline {fmt(row['baseline_ssim_mean'])}), "
              f"{row['seconds']:.0f} s", file=sys.stderr, flush=True)
    markdown = table(rows)
    print(markdown)
    print(f"\nmachine: {machine()}")
    if args.write_results:
        notes = Path(args.notes).read_text() if args.notes else f"Measured on {machine()}."
        write_results(markdown, notes)


if __name__ == "__main__":
    main()
