"""Audit baselines in `ppattack check`: verdicts per threat model guarded, exit 1 on a regression."""
from __future__ import annotations

import pytest

from ppattack.audit_check import AuditBound, compare, load_audit_bounds
from ppattack.audit_records import ThreatSummary
from ppattack.cli import cli
from ppattack.errors import ParameterError

AUDIT = """
[defaults]
dataset = "samples"
preset = "quick"
limit = 64

[[audit]]
cipher = "proposed"
attacks = "fr,keyrec,kpa"
max_ssim = {{ coa = 0.30 }}
min_ssim = {{ "coa+public" = 0.99 }}
key_recovered = {{ "coa+public" = {keyrec}, kpa = true }}
"""


def _worst(ssim, key):
    return ThreatSummary(verdict="-", best_attack=None, best_ssim=ssim, best_lpips=None, key_recovered=key,
                         key_recovered_by=(), control_passed=None, attacks_run=(), not_applicable={}, errors={})


def test_compare_known_answers():
    bound = AuditBound("c", limits={"max_ssim": {"coa": 0.3}, "min_ssim": {"kpa": 0.9},
                                    "key_recovered": {"coa+public": False}})
    worst = {"coa": _worst(0.31, False), "kpa": _worst(0.9, True), "coa+public": _worst(None, False)}
    outcome = {(v.threat, v.kind): v.ok for v in compare(bound, worst)}
    assert outcome == {("coa", "max_ssim"): False, ("kpa", "min_ssim"): True, ("coa+public", "key_recovered"): True}
    worst["coa"] = _worst(None, False)  # no attack applies: nothing restored
    worst["kpa"] = _worst(None, False)
    outcome = {(v.threat, v.kind): v.ok for v in compare(bound, worst)}
    assert outcome[("coa", "max_ssim")] is True and outcome[("kpa", "min_ssim")] is False


def test_audit_baseline_holds_and_a_recovered_key_is_a_regression(tmp_path, cli_runner):
    holds = tmp_path / "holds.toml"
    holds.write_text(AUDIT.format(keyrec="true"))
    result = cli_runner.invoke(cli, ["check", "--baseline", str(holds)])
    assert result.exit_code == 0, result.output
    assert "all 4 bound(s) hold" in result.output
    guard = tmp_path / "guard.toml"  # a cipher package's CI: the key must not be recovered under coa+public
    guard.write_text(AUDIT.format(keyrec="false"))
    result = cli_runner.invoke(cli, ["check", "--baseline", str(guard)])
    assert result.exit_code == 1, result.output
    assert "1 regression(s) in 4 bound(s)" in result.output and "REGRESSION" in result.output


@pytest.mark.parametrize("entry, message", [
    ('cipher = "proposed"', "give at least one of"),
    ('cipher = "proposed"\nmax_ssim = { lunch = 0.3 }', "must be a table of threat models"),
    ('cipher = "proposed"\nkey_recovered = { coa = 1 }', "true or false"),
    ('cipher = "proposed"\nmax_ssim = { coa = 0.3 }\nwat = 1', "unknown key 'wat'"),
])
def test_bad_audit_entries_are_one_line_errors(tmp_path, cli_runner, entry, message):
    path = tmp_path / "bad.toml"
    path.write_text(f"[[audit]]\n{entry}\n")
    with pytest.raises(ParameterError, match=message):
        load_audit_bounds(path)
    result = cli_runner.invoke(cli, ["check", "--baseline", str(path)])
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1


AUDIT_ONLY = '[[audit]]\ncipher = "proposed"\nattacks = "fr"\n'


@pytest.mark.parametrize("text, message", [
    (AUDIT_ONLY + "max_ssim = { cpa = 1.5 }", "max_ssim cpa must be a number in [0, 1], got 1.5"),
    (AUDIT_ONLY + "max_ssim = { cpa = -0.5 }", "max_ssim cpa must be a number in [0, 1], got -0.5"),
    (AUDIT_ONLY + "max_ssim = { coa = nan }", "max_ssim coa must be a number in [0, 1], got nan"),
    (AUDIT_ONLY + "min_ssim = { coa = inf }", "min_ssim coa must be a number in [0, 1], got inf"),
    (AUDIT_ONLY + "max_ssim = { coa = 1" + "0" * 400 + " }", "got an integer of 401 digits"),
    (AUDIT_ONLY + "max_ssim = { coa = 0.2 }\nmin_ssim = { coa = 0.5 }", "min_ssim coa 0.5 is not below max_ssim coa 0.2"),
    (AUDIT_ONLY + "seed = -1\nmax_ssim = { coa = 0.9 }", "seed must be an integer >= 0, got -1"),
    (AUDIT_ONLY + "limit = 0\nmax_ssim = { coa = 0.9 }", "limit must be an integer >= 1, got 0"),
    ("[defaults]\nlimit = 0\n" + AUDIT_ONLY + "max_ssim = { coa = 0.9 }", "limit must be an integer >= 1, got 0"),
    ("[defaults]\nlimt = 8\n" + AUDIT_ONLY + "max_ssim = { coa = 0.9 }", "[defaults] has an unknown key 'limt'"),
    (AUDIT_ONLY + 'budget = "huge"\nmax_ssim = { coa = 0.9 }', "budget must be one of quick, cpu, paper"),
    (AUDIT_ONLY + "params = 3\nmax_ssim = { coa = 0.9 }", "params must be a table of single values"),
    (AUDIT_ONLY.replace('"fr"', "3") + "max_ssim = { coa = 0.9 }", "attacks must be a string"),
    (AUDIT_ONLY.replace("proposed", "nosuch") + "max_ssim = { coa = 0.9 }", "no cipher named 'nosuch'"),
], ids=["1.5", "-0.5", "nan", "inf", "400-digits", "min>max", "seed-1", "limit0", "defaults-limit0",
        "defaults-typo", "budget", "params", "attacks", "cipher"])
def test_impossible_audit_entries_are_refused_before_any_audit(tmp_path, cli_runner, monkeypatch, text, message):
    """`[[audit]]` limits and options were not checked: 1.5 and -0.5 ran (exit 0 / 1), nan, inf
    and min > max were reported as regressions (exit 1), seed = -1 and limit = 0 ran, a typo
    in [defaults] was ignored, a 400-digit bound was "unexpected OverflowError"."""
    import ppattack.audit

    def started(*args, **kwargs):
        raise AssertionError("the audit started")

    monkeypatch.setattr(ppattack.audit, "run_audit", started)
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    result = cli_runner.invoke(cli, ["check", "--baseline", str(path), "--out", str(tmp_path / "made")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: baseline {path}") and message in lines[0], result.stderr
    assert sorted(tmp_path.iterdir()) == [path]


def test_result_folders_with_audit_entries_are_refused(tmp_path, cli_runner, monkeypatch):
    """Result folders on the command line were ignored for [[audit]] entries (the audit ran, a
    missing folder was no error)."""
    import ppattack.audit

    def started(*args, **kwargs):
        raise AssertionError("the audit started")

    monkeypatch.setattr(ppattack.audit, "run_audit", started)
    path = tmp_path / "audit.toml"
    path.write_text(AUDIT_ONLY + "max_ssim = { coa = 0.9 }\n")
    result = cli_runner.invoke(cli, ["check", "--baseline", str(path), str(tmp_path / "nonexistent")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: result folders answer [[bound]] entries only") and \
        result.stderr.count("\n") == 1, result.stderr
