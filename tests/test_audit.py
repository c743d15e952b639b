"""The audit: the verdict ladder, worst cases per threat model, n/a vs error, files and CLI."""
from __future__ import annotations

import json

import pytest

from ppattack import audit as audit_module
from ppattack.audit import AUDIT_BUDGETS, audit_cases, budget_params, run_audit, worst_cases
from ppattack.audit_records import AuditCase, AuditDocument
from ppattack.records import Control
from ppattack.verdict import PARTIAL_MARGIN, RESTORED_SSIM, verdict
from ppattack.cli import cli
from ppattack.errors import ParameterError
from ppattack.harness import RunConfig
from ppattack.report import finite
from ppattack.schemas import validate


def test_verdict_ladder_known_answers():
    assert verdict(0.2, 0.1, key_recovered=True) == "key recovered"
    assert verdict(None, 0.1, key_recovered=False) == "no attack applies"
    assert verdict(RESTORED_SSIM, 0.1, key_recovered=False) == "content restored"
    assert verdict(0.1 + PARTIAL_MARGIN, 0.1, key_recovered=False) == "partially restored"
    assert verdict(0.1 + PARTIAL_MARGIN - 0.01, 0.1, key_recovered=False) == "not broken by these attacks"
    assert verdict(0.5, None, key_recovered=False) == "not broken by these attacks"


def _case(attack, threat, status="ok", ssim=None, key=None, reason=None):
    return AuditCase(attack=attack, threat_model=threat, folder=f"{attack}/{threat}" if status == "ok" else None,
                     status=status, reason=reason, means={"ssim": ssim, "lpips": None, "psnr": None},
                     key_recovered=key, control=Control(True, passed=True) if status == "ok" else None)


def test_worst_case_per_threat_model_ignores_not_applicable():
    cases = [_case("a", "coa+public", ssim=0.3), _case("b", "coa+public", ssim=0.6, key=False),
             _case("c", "coa+public", "n/a", reason="outside its class"),
             _case("d", "kpa", ssim=0.05, key=True), _case("e", "cpa", "error", reason="RuntimeError: x"),
             _case("f", "coa", "n/a", reason="no public images")]
    summary = worst_cases(cases, baseline_ssim=0.1)
    assert summary["coa+public"].best_attack == "b" and summary["coa+public"].best_ssim == 0.6
    assert summary["coa+public"].verdict == "partially restored" and summary["coa+public"].control_passed is True
    assert summary["coa+public"].not_applicable == {"c": "outside its class"}
    assert summary["kpa"].verdict == "key recovered" and summary["kpa"].key_recovered_by == ("d",)
    assert summary["cpa"].verdict == "no attack applies" and summary["cpa"].errors == {"e": "RuntimeError: x"}
    assert summary["coa"].verdict == "no attack applies" and summary["coa"].attacks_run == ()
    assert summary["model"].best_attack is None


def test_cases_cover_every_threat_model_of_each_attack_weakest_first():
    cases = audit_cases(["kpa", "fr", "itn"])
    assert cases == [("fr", "coa"), ("fr", "coa+public"), ("itn", "coa+public"), ("itn", "kpa"), ("kpa", "kpa")]


@pytest.fixture(scope="module")
def proposed_audit(tmp_path_factory: pytest.TempPathFactory):
    """`ppattack audit` of proposed on samples with the key-recovery attacks and fr."""
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("audit") / "proposed"
    result = CliRunner().invoke(cli, ["audit", "--cipher", "proposed", "--attacks", "keyrec,kpa,cpa,fr",
                                      "--no-accuracy", "--out", str(out)])
    return out, result


def test_audit_of_proposed_recovers_the_key_under_coa_public_kpa_and_cpa(proposed_audit):
    out, result = proposed_audit
    assert result.exit_code == 0, result.output
    document = json.loads((out / "audit.json").read_text())
    assert validate(document, "audit") == []
    verdicts = {threat: s["verdict"] for threat, s in document["threat_models"].items()}
    assert verdicts["coa+public"] == verdicts["kpa"] == verdicts["cpa"] == "key recovered"
    assert verdicts["model"] == "no attack applies"  # model-leak is not in this ensemble
    assert document["threat_models"]["kpa"]["key_recovered_by"] == ["kpa"]
    for case in document["cases"]:
        assert case["control"]["run"] is True, case  # every case ran its positive control
    assert "key recovered" in result.output and "coa+public" in result.output


def test_audit_json_reads_back_into_its_record_and_writes_the_same_text(proposed_audit):
    out, _ = proposed_audit
    text = (out / "audit.json").read_text()
    record = AuditDocument.from_json(json.loads(text))
    assert record.threat_models["kpa"].key_recovered_by == ("kpa",) and record.cases[0].control.ran
    assert json.dumps(finite(record.to_json()), indent=2) + "\n" == text


def test_audit_writes_its_files(proposed_audit):
    out, _ = proposed_audit
    for name in ("audit.json", "audit.md", "audit.png", "index.html", "keyrec/coa+public/result.json"):
        assert (out / name).is_file(), name
    assert (out / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "index.html").read_text()
    assert "<script" not in html and "data:image/png;base64," in html
    markdown = (out / "audit.md").read_text()
    assert "| coa+public | key recovered | keyrec |" in markdown
    assert "not broken by these attacks*, not secure" in markdown


def test_an_attack_that_cannot_take_the_cipher_is_not_applicable_and_a_crash_is_an_error(tmp_path, monkeypatch):
    real_run = audit_module.run

    def run(config, **options):
        if config.attack == "kpa":
            raise ParameterError("kpa: outside this attack's class (test)")
        if config.attack == "cpa":
            raise RuntimeError("boom")
        return real_run(config, **options)

    monkeypatch.setattr(audit_module, "run", run)
    result = run_audit("plain", tmp_path / "a", RunConfig(cipher="plain", attack="*", accuracy=False, limit=8),
                       attacks=["fr", "kpa", "cpa"])
    document = result.document
    assert validate(document, "audit") == []
    status = {(c["attack"], c["threat_model"]): (c["status"], c["reason"]) for c in document["cases"]}
    assert status["kpa", "kpa"] == ("n/a", "kpa: outside this attack's class (test)")
    assert status["cpa", "cpa"] == ("error", "RuntimeError: boom")
    assert status["fr", "coa"][0] == "ok"
    assert document["threat_models"]["kpa"]["not_applicable"] == {"kpa": "kpa: outside this attack's class (test)"}
    assert document["threat_models"]["cpa"]["errors"] == {"cpa": "RuntimeError: boom"}
    coa = document["threat_models"]["coa"]
    assert coa["best_attack"] == "fr" and coa["attacks_run"] == ["fr"]
    assert coa["verdict"] == verdict(coa["best_ssim"], document["baseline"]["ssim"], False)


def test_budget_sets_the_attacks_budget_and_a_small_classifier_where_the_user_did_not():
    # cpu on the cifar preset: the quick preset's classifier, training images capped.
    values = budget_params("cpu", "cifar", {"classifier_epochs": 2})
    assert values["classifier_width"] == 48 and values["classifier_depth"] == 2
    assert values["classifier_epochs"] == 2  # the user's value wins
    assert values["max_train"] == 10000
    # quick on the quick preset sets nothing (its audits keep their numbers); paper nothing ever.
    assert budget_params("quick", "quick", {}) == {}
    assert budget_params("paper", "cifar", {"targets": 9}) == {"targets": 9}
    assert budget_params("cpu", "quick", {"max_train": 50000})["max_train"] == 50000  # theirs


def test_every_case_of_a_budgeted_audit_trains_at_the_budget(tmp_path, monkeypatch):
    seen, beside = [], []

    def run(config, *, control_beside=False):
        seen.append((config.attack, config.attack_budget, config.preset, dict(config.params)))
        beside.append(control_beside)
        raise ParameterError("recorded (test)")

    monkeypatch.setattr(audit_module, "run", run)
    with pytest.raises(ParameterError, match="no registered attack applies"):
        run_audit("plain", tmp_path / "a", RunConfig(cipher="plain", attack="*", preset="cifar", accuracy=False),
                  budget="cpu", attacks=["fr", "gan", "itn"])
    assert AUDIT_BUDGETS["cpu"].attacks == ("cpu", "audit", "quick")
    # gan's audit budget, fr's quick (coa, coa+public), itn's own cpu budget (coa+public, kpa)
    assert sorted((attack, budget) for attack, budget, _, _ in seen) == [
        ("fr", "quick"), ("fr", "quick"), ("gan", "audit"), ("itn", "cpu"), ("itn", "cpu")]
    assert all(preset == "cifar" and params["classifier_width"] == 48 for _, _, preset, params in seen)
    assert beside == [True] * 5  # the cpu audit trains each control beside its attack
    seen.clear(), beside.clear()
    with pytest.raises(ParameterError, match="no registered attack applies"):
        run_audit("plain", tmp_path / "b", RunConfig(cipher="plain", attack="*", preset="cifar", accuracy=False),
                  budget="quick", attacks=["itn"])
    assert [budget for _, budget, _, _ in seen] == ["quick", "quick"]  # the quick audit keeps itn quick
    assert beside == [False, False]  # and its controls after their attacks, in one process


def test_audit_bad_input_exits_2_and_writes_nothing(cli_runner, tmp_path):
    out = tmp_path / "out"
    for args in (["--cipher", "nope"], ["--cipher", "proposed", "--attacks", "nope"],
                 ["--cipher", "proposed", "--budget", "huge"]):
        result = cli_runner.invoke(cli, ["audit", *args, "--out", str(out)])
        assert result.exit_code == 2, (args, result.output)
        assert result.output.count("\n") <= 2 and "error:" in result.output
        assert not out.exists()


def test_a_per_image_key_cipher_is_outside_kpa_and_the_audit_says_why(tmp_path):
    document = run_audit("pe", tmp_path / "pe", RunConfig(cipher="pe", attack="*", accuracy=False, limit=8),
                         attacks=["fr", "kpa"]).document
    kpa = document["threat_models"]["kpa"]
    assert kpa["verdict"] == "no attack applies" and kpa["attacks_run"] == []
    assert "key per image" in kpa["not_applicable"]["kpa"]
    assert document["threat_models"]["coa+public"]["best_attack"] == "fr"
    assert "kpa" in (tmp_path / "pe" / "audit.md").read_text().split("## Every case")[1]
