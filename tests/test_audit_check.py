"""Audit baselines in `ppattack check`: verdicts per threat model guarded, exit 1 on a regression."""
from __future__ import annotations

import pytest

from ppattack.audit_check import AuditBound, compare, load_audit_bounds
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
    return {"best_ssim": ssim, "key_recovered": key}


def test_compare_known_answers():
    bound = AuditBound("c", limits={"max_ssim": {"coa": 0.3}, "min_ssim": {"kpa": 0.9},
                                    "key_recovered": {"coa+public": False}})
    document = {"threat_models": {"coa": _worst(0.31, False), "kpa": _worst(0.9, True),
                                  "coa+public": _worst(None, False)}}
    outcome = {(v.threat, v.kind): v.ok for v in compare(bound, document)}
    assert outcome == {("coa", "max_ssim"): False, ("kpa", "min_ssim"): True, ("coa+public", "key_recovered"): True}
    document["threat_models"]["coa"] = _worst(None, False)  # no attack applies: nothing restored
    document["threat_models"]["kpa"] = _worst(None, False)
    outcome = {(v.threat, v.kind): v.ok for v in compare(bound, document)}
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
