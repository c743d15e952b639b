"""The verdict ladder that audits and bench leaderboards put a cipher's worst case on.

    verdict(best_ssim=0.95, baseline_ssim=0.1, key_recovered=False)   # "content restored"
    verdict(best_ssim=0.2, baseline_ssim=0.1, key_recovered=False,
            best_ssim_up_to_mirror=0.99)                             # "restored (mirrored)"
    worst_case([AttackScore("fr", 0.3), AttackScore("keyrec", 1.0, key_recovered=True)], 0.1)
        # best keyrec, verdict "key recovered": the one reading of bench rows and audit threat models
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

#: The ladder, strongest finding first.
VERDICTS = ("key recovered", "content restored", "restored (mirrored)", "partially restored",
            "not broken by these attacks", "no attack applies")
#: Mean SSIM (wang) at which the content counts as restored.
RESTORED_SSIM = 0.9
#: Mean SSIM above the ciphertexts' own (the no-attack baseline) that counts as partial restoration.
PARTIAL_MARGIN = 0.1


def verdict(best_ssim: float | None, baseline_ssim: float | None, key_recovered: bool,
            best_ssim_up_to_mirror: float | None = None) -> str:
    """The rung of :data:`VERDICTS` for a worst case: the best mean SSIM any attack reached
    (None: no attack ran), the ciphertexts' own SSIM, whether an attack recovered the key
    exactly (its recovered key or map decrypts every ciphertext), and the best mean SSIM up to
    a left-right mirror any attack reached (:func:`ppattack.metrics.ssim_up_to_mirror`; None:
    not measured).

    "restored (mirrored)": no attack reached :data:`RESTORED_SSIM` as restored, but one did
    with its restorations mirrored left-right (below it as restored, so the mirror was chosen):
    the attack restored the mirror image of the content.
    """
    if key_recovered:
        return "key recovered"
    if best_ssim is None:
        return "no attack applies"
    if best_ssim >= RESTORED_SSIM:
        return "content restored"
    if best_ssim_up_to_mirror is not None and best_ssim_up_to_mirror >= RESTORED_SSIM:
        return "restored (mirrored)"
    if baseline_ssim is not None and best_ssim >= baseline_ssim + PARTIAL_MARGIN:
        return "partially restored"
    return "not broken by these attacks"


@dataclass(frozen=True)
class AttackScore:
    """What the worst case reads of one attack that ran under a threat model: its mean SSIM
    (wang), mean SSIM up to a left-right mirror and mean LPIPS (None: not measured), whether it
    recovered the key exactly, and whether its positive control passed (None: not run)."""

    attack: str
    ssim: float
    ssim_up_to_mirror: float | None = None
    lpips: float | None = None
    key_recovered: bool = False
    control_passed: bool | None = None


@dataclass(frozen=True)
class WorstCase:
    """The worst case of one threat model: the best attack (highest mean SSIM; the first of a
    tie), the best up to a left-right mirror (None: none measured it), the attacks that
    recovered the key, and the verdict. The best attack stays the best when its positive
    control failed: ``control_passed`` says so, and a reader discounts it."""

    best: AttackScore | None
    best_up_to_mirror: AttackScore | None
    key_recovered_by: tuple[str, ...]
    verdict: str

    @property
    def control_passed(self) -> bool | None:
        """Whether the best attack's positive control passed (None: no best, or not run)."""
        return None if self.best is None else self.best.control_passed


def worst_case(scores: Sequence[AttackScore], baseline_ssim: float | None) -> WorstCase:
    """Of these attacks' results under one threat model (in the caller's order), the best
    attack and the verdict that follows (:func:`verdict`; ``baseline_ssim``: the ciphertexts'
    own mean SSIM). No attacks: no best, "no attack applies".

        >>> worst_case([AttackScore("a", 0.3), AttackScore("b", 0.95)], 0.1).verdict
        'content restored'
    """
    best = max(scores, key=lambda score: score.ssim, default=None)
    mirrorable = [score for score in scores if score.ssim_up_to_mirror is not None]
    best_mirror = max(mirrorable, key=lambda score: score.ssim_up_to_mirror, default=None)
    keyed = tuple(score.attack for score in scores if score.key_recovered)
    rung = verdict(None if best is None else best.ssim, baseline_ssim, bool(keyed),
                   None if best_mirror is None else best_mirror.ssim_up_to_mirror)
    return WorstCase(best, best_mirror, keyed, rung)
