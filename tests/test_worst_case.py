"""The one worst-case function that bench leaderboards and audit threat models read."""
from __future__ import annotations

from ppattack.verdict import AttackScore, worst_case


def test_the_best_attack_stays_the_best_when_its_control_failed_and_says_so():
    scores = [AttackScore("fr", 0.30, lpips=0.6, control_passed=True),
              AttackScore("itn", 0.95, ssim_up_to_mirror=0.95, lpips=0.1, control_passed=False),
              AttackScore("keyrec", 0.20, ssim_up_to_mirror=0.99, control_passed=True)]
    worst = worst_case(scores, baseline_ssim=0.1)
    assert worst.best.attack == "itn" and worst.best.lpips == 0.1
    assert worst.control_passed is False  # reported beside the verdict, as audit.json's control_passed
    assert worst.verdict == "content restored"
    assert worst.best_up_to_mirror.attack == "keyrec" and worst.key_recovered_by == ()


def test_a_tie_goes_to_the_first_attack_in_the_order_given():
    scores = [AttackScore("b", 0.5, control_passed=True), AttackScore("a", 0.5, key_recovered=True),
              AttackScore("c", 0.5, key_recovered=True)]
    worst = worst_case(scores, baseline_ssim=0.1)
    assert worst.best.attack == "b" and worst.control_passed is True
    assert worst.key_recovered_by == ("a", "c") and worst.verdict == "key recovered"


def test_no_attack_gives_no_best_and_no_attack_applies():
    worst = worst_case([], baseline_ssim=0.1)
    assert worst.best is None and worst.best_up_to_mirror is None and worst.control_passed is None
    assert worst.key_recovered_by == () and worst.verdict == "no attack applies"
