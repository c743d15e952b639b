"""run and bench default to the seed's attacker (coa+public) for attacks with several threat models."""
from __future__ import annotations

from ppattack.harness import RunConfig, run
from ppattack.threat import default_threat


def test_default_threat_prefers_coa_public():
    assert default_threat(("coa", "coa+public")) == "coa+public"
    assert default_threat(("kpa",)) == "kpa"
    assert default_threat(("model",)) == "model"


def test_run_uses_coa_public_unless_told():
    base = RunConfig(cipher="plain", attack="fr", limit=4, accuracy=False)
    assert run(base).document["attack"]["threat_model"] == "coa+public"
    coa = run(RunConfig(cipher="plain", attack="fr", limit=4, accuracy=False, threat="coa")).document
    assert coa["attack"]["threat_model"] == "coa"
