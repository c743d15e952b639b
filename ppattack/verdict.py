"""The verdict ladder that audits and bench leaderboards put a cipher's worst case on.

    verdict(best_ssim=0.95, baseline_ssim=0.1, key_recovered=False)   # "content restored"
"""
from __future__ import annotations

#: The ladder, strongest finding first.
VERDICTS = ("key recovered", "content restored", "partially restored", "not broken by these attacks",
            "no attack applies")
#: Mean SSIM (wang) at which the content counts as restored.
RESTORED_SSIM = 0.9
#: Mean SSIM above the ciphertexts' own (the no-attack baseline) that counts as partial restoration.
PARTIAL_MARGIN = 0.1


def verdict(best_ssim: float | None, baseline_ssim: float | None, key_recovered: bool) -> str:
    """The rung of :data:`VERDICTS` for a worst case: the best mean SSIM any attack reached
    (None: no attack ran), the ciphertexts' own SSIM, and whether an attack recovered the key
    exactly (its recovered key or map decrypts every ciphertext)."""
    if key_recovered:
        return "key recovered"
    if best_ssim is None:
        return "no attack applies"
    if best_ssim >= RESTORED_SSIM:
        return "content restored"
    if baseline_ssim is not None and best_ssim >= baseline_ssim + PARTIAL_MARGIN:
        return "partially restored"
    return "not broken by these attacks"
