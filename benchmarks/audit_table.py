"""One row per cipher from audit folders: the table at the top of benchmarks/RESULTS.md.

    python benchmarks/audit_table.py AUDIT_DIR [AUDIT_DIR ...]

Each AUDIT_DIR holds the audit.json that ``ppattack audit`` wrote. A row gives the cipher, its
key space (bits), the accuracy of the plain and the protected classifier, the ciphertexts' own
mean SSIM, the worst case of each threat model and the audit's wall time (s). A cell names the
rung of the verdict ladder (:data:`ppattack.verdict.VERDICTS`, shortened), the best attack and
its mean SSIM (for "restored (mirrored)": its SSIM up to a left-right mirror of every restoration,
and as restored), and "control failed" where that attack's positive control on ``plain`` failed:
such a figure is a lower bound, no evidence of strength.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ppattack.audit_records import AuditDocument, ThreatSummary

#: The threat models in the table's column order.
THREAT_MODELS = ("coa", "coa+public", "kpa", "cpa", "model")
#: A verdict's short name in a cell.
SHORT = {"content restored": "restored", "restored (mirrored)": "restored (mirrored)",
         "partially restored": "partial", "not broken by these attacks": "not broken"}


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cell(summary: ThreatSummary | None) -> str:
    """The worst case of one threat model, as the table shows it."""
    if summary is None or summary.best_attack is None:
        return "no attack applies"
    if summary.key_recovered:
        text = f"key recovered ({', '.join(summary.key_recovered_by)})"
    elif summary.verdict == "restored (mirrored)":  # the figure that earned it: up to a mirror
        text = (f"restored (mirrored): {number(summary.best_ssim_up_to_mirror)} "
                f"{summary.best_attack_up_to_mirror} ({number(summary.best_ssim)} as restored)")
    else:
        text = f"{SHORT[summary.verdict]}: {number(summary.best_ssim)} {summary.best_attack}"
    return text + (", control failed" if summary.control_passed is False else "")


def row(document: AuditDocument) -> str:
    accuracy = document.accuracy
    plain = None if accuracy is None else accuracy.plain_model_on_plain
    protected = None if accuracy is None else accuracy.protected_model_on_encrypted
    accuracy_text = "-" if plain is None and protected is None else f"{number(plain)} / {number(protected)}"
    cells = [document.cipher.name, f"{document.cipher.key_space_bits:.0f}", accuracy_text,
             number(document.baseline.ssim)]
    cells += [cell(document.threat_models.get(threat)) for threat in THREAT_MODELS]
    cells.append(f"{document.seconds:.0f}")
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audits", nargs="+", type=Path, help="folders holding audit.json")
    args = parser.parse_args()
    missing = [str(folder) for folder in args.audits if not (folder / "audit.json").is_file()]
    if missing:
        print(f"error: no audit.json in {', '.join(missing)}: give the folders `ppattack audit --out` wrote",
              file=sys.stderr)
        return 2
    print("| cipher | key space bits | accuracy plain / protected | ciphertext SSIM | "
          + " | ".join(THREAT_MODELS) + " | s |")
    print("|---|---:|---|---:|" + "---|" * len(THREAT_MODELS) + "---:|")
    for folder in args.audits:
        print(row(AuditDocument.from_json(json.loads((folder / "audit.json").read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
