"""A run's result is a typed, frozen record: its readers read fields, its serialiser cannot write
a recovered key, the classifiers train once per cipher in a bench, and the positive control is a
second evaluation, not a second run."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import ppattack.harness as harness
import ppattack.learning.classifier as classifier_module
from ppattack.attack import AttackResult
from ppattack.bench import run_bench
from ppattack.harness import RunConfig, control_config, resolve, run
from ppattack.records import AttackRecord, RunRecord
from ppattack.registry import CIPHERS
from ppattack.report import finite, write_run
from ppattack.schemas import validate


@pytest.fixture(scope="module")
def keyrec_result() -> tuple[harness.RunResult, list[AttackResult]]:
    """keyrec against proposed (it recovers the key), with the attack's own result kept aside."""
    from ppattack.attacks.keyrec import KeyRec

    seen: list[AttackResult] = []
    original = KeyRec.__call__

    def keep(self, view):
        outcome = original(self, view)
        seen.append(outcome)
        return outcome

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KeyRec, "__call__", keep)
        result = run(RunConfig(cipher="proposed", attack="keyrec", accuracy=False, limit=48))
    return result, seen


def test_a_run_is_a_frozen_record_read_by_its_fields(keyrec_result):
    result, _ = keyrec_result
    record = result.record
    assert isinstance(record, RunRecord)
    assert record.cipher.name == "proposed" and record.attack.name == "keyrec"
    assert record.attack.key_recovered and record.attack.key_recovery["complete"] == 1.0
    assert record.metrics.ssim.mean == pytest.approx(1.0) and len(record.metrics.ssim.values) == 48
    assert record.accuracy.reason == "skipped (--no-accuracy)" and not record.accuracy.measured
    assert not record.control.ran and record.dataset.image_shape == (3, 32, 32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.seconds = 0.0
    document = json.loads(json.dumps(finite(record.to_json())))
    assert validate(document, "result") == []
    assert RunRecord.from_json(document) == record  # what check reads back is what was written


def test_result_json_says_budget_for_the_attack_s_budget_and_older_files_that_say_preset_still_read(
        keyrec_result, tmp_path: Path):
    from ppattack.check import collect_results

    record = keyrec_result[0].record
    document = json.loads(json.dumps(finite(record.to_json())))
    params = document["attack"]["params"]
    assert list(params)[:3] == ["budget", "threat", "seed"] and "preset" not in params
    assert params["budget"] == record.config.preset == "quick"
    older = json.loads(json.dumps(document))  # as result.json was written before the rename
    older["attack"]["params"] = {("preset" if name == "budget" else name): value for name, value in params.items()}
    assert list(older["attack"]["params"])[0] == "preset"
    assert validate(older, "result") == []
    assert RunRecord.from_json(older) == record
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "result.json").write_text(json.dumps(older), encoding="utf-8")
    ((_, read),) = collect_results([tmp_path]).values()  # what `ppattack check` reads
    assert read.attack.params == record.attack.params and read.attack.params["budget"] == "quick"


def example_documents(document: dict) -> dict[str, dict]:
    """The result.json layouts the tests write, derived from one run's ``document``: a key
    recovered and none, a control run, accuracy measured, LPIPS measured, a baseline that could
    not be scored."""
    gone = object()  # a key left out

    def changed(**parts) -> dict:
        changed_document = json.loads(json.dumps(document))
        for path, value in parts.items():
            *above, name = path.split("__")
            target = changed_document
            for part in above:
                target = target[part]
            if value is gone:
                del target[name]
            else:
                target[name] = value
        return changed_document

    summary = {"mean": 0.4567, "median": 0.45, "std": 0.01, "values": [0.4567] * 48}
    return {
        "as run": changed(),
        "no key recovery": changed(attack__key_recovery=gone),
        "control ran": changed(control={"run": True, "cipher": "plain", "params": {"attack.block_size": 4},
                                        "ssim": 0.9412, "psnr": "inf", "threshold": 0.9, "passed": True,
                                        "seconds": 3.5}),
        "accuracy measured": changed(accuracy={
            "plain_model_on_plain": 0.91, "protected_model_on_encrypted": 0.88, "reason": None,
            "test_images": 16, "train_images": 64, "classifier": {"model": "vit", "training": {"epochs": 1}},
            "train_seconds": {"plain": 1.5, "protected": 2.5}, "cache_hit": {"plain": False, "protected": True}}),
        "lpips measured": changed(metrics__lpips=summary, metrics__lpips_unavailable=None),
        "baseline unavailable": changed(baseline={"unavailable": "ciphertexts are float32, not 8-bit images"}),
    }


def test_every_example_result_json_reads_back_and_writes_the_same_text(keyrec_result):
    document = json.loads(json.dumps(finite(keyrec_result[0].record.to_json())))
    for name, example in example_documents(document).items():
        assert validate(example, "result") == [], name
        text = json.dumps(example, indent=2)
        assert json.dumps(finite(RunRecord.from_json(example).to_json()), indent=2) == text, name


def test_a_recovered_key_never_reaches_result_json_nor_report_md(keyrec_result, tmp_path: Path):
    result, seen = keyrec_result
    (outcome,) = seen
    assert outcome.recovered_key is not None and outcome.recovered_map is not None  # the attack found it
    assert "recovered_key" not in outcome.facts and "recovered_map" not in outcome.facts
    assert not {"recovered_key", "recovered_map"} & {f.name for f in dataclasses.fields(AttackRecord)}
    assert "recovered" not in repr(outcome)  # nor does a log line of the attack's result show it
    write_run(result, tmp_path)
    for name in ("result.json", "report.md"):
        text = (tmp_path / name).read_text()
        assert "recovered_key" not in text and "recovered_map" not in text, name
    parts = [list(values) for values in outcome.recovered_key.values()]

    def lists(value):  # every list anywhere in the document
        if isinstance(value, dict):
            return [item for v in value.values() for item in lists(v)]
        if isinstance(value, list):
            return [value] + [item for v in value for item in lists(v)]
        return []

    written = lists(json.loads((tmp_path / "result.json").read_text()))
    assert not [part for part in parts if part in written]


def test_a_bench_trains_the_classifiers_once_per_cipher(tmp_path: Path, monkeypatch):
    trainings: dict[str, int] = {}
    real_fit = classifier_module.fit

    def counting_fit(cipher, key, *args, description: str = "", **kwargs):
        if description.startswith("training the protected classifier"):
            trainings[cipher.name] = trainings.get(cipher.name, 0) + 1
        return real_fit(cipher, key, *args, description=description, **kwargs)

    monkeypatch.setattr(classifier_module, "fit", counting_fit)
    bench = run_bench(["proposed", "plain"], ["fr", "keyrec"], tmp_path, RunConfig(
        cipher="*", attack="*", limit=4, params={"classifier_epochs": 1, "max_train": 64, "max_test": 16}))
    assert trainings == {"proposed": 1, "plain": 1}
    for cipher in ("proposed", "plain"):  # every cell of a cipher reports the one measurement
        accuracies = [json.loads((tmp_path / cipher / attack / "result.json").read_text())["accuracy"]
                      for attack in ("fr", "keyrec")]
        assert accuracies[0] == accuracies[1] and accuracies[0]["protected_model_on_encrypted"] is not None
    assert not bench.failures


def test_the_positive_control_is_a_second_evaluation_not_a_second_run(monkeypatch):
    original = harness.run
    depth = 0

    def once(config, **options):
        nonlocal depth
        if depth:
            raise RuntimeError(f"run() re-entered for {config.cipher} vs {config.attack}")
        depth += 1
        try:
            return original(config, **options)
        finally:
            depth -= 1

    config = RunConfig(cipher="proposed", attack="keyrec", accuracy=False, limit=16, control=True)
    monkeypatch.setattr(harness, "run", once)
    control = harness.run(config).record.control
    monkeypatch.undo()
    assert control.ran and control.passed and control.params == {}
    # the same numbers as the control's own run (what the recursive run() used to produce)
    cipher = CIPHERS.create("proposed", **resolve(config).cipher_params)
    alone = run(control_config(config, resolve(config), cipher)).record
    assert alone.cipher.name == "plain"
    assert control.ssim == alone.metrics.ssim.mean and control.psnr == alone.metrics.psnr.mean
