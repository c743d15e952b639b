"""The verdict ladder that audits and bench leaderboards put a cipher's worst case on.

    verdict(best_ssim=0.95, baseline_ssim=0.1, key_recovered=False)   # "content restored"
    verdict(best_ssim=0.2, baseline_ssim=0.1, key_recovered=False,
            best_ssim_up_to_mirror=0.99)                             # "restored (mirrored)"
"""
from __future__ import annotations

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
