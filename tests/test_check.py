"""`ppattack check`: bounds from a TOML baseline, results reused or produced, exit codes."""
from __future__ import annotations

import json

import pytest

from ppattack.check import check, load_baseline
from ppattack.cli import cli
from ppattack.errors import DataError, ParameterError

BASELINE = """
[defaults]
dataset = "samples"
preset = "quick"
limit = 8

[[bound]]
cipher = "proposed"
attack = "fr"
max_ssim = {max_ssim}

[[bound]]
cipher = "plain"
attack = "fr"
min_ssim = 0.2
"""


def write(tmp_path, text, name="baseline.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_baseline_parsing_fills_run_defaults(tmp_path):
    bounds = load_baseline(write(tmp_path, BASELINE.format(max_ssim=0.3)))
    assert [b.case.cipher for b in bounds] == ["proposed", "plain"]
    assert bounds[0].limits == {"max_ssim": 0.3}
    assert bounds[0].case.dataset == "samples" and bounds[0].case.threat == "coa+public"  # run's default for fr
    assert bounds[0].case.limit == 8


@pytest.mark.parametrize("text, error, fragment", [
    ("[[bound]]\ncipher = 'plain'\nattack = 'fr'\n", ParameterError, "give at least one of"),
    ("[[bound]]\ncipher = 'plain'\nattack = 'fr'\nmax_sim = 1\n", ParameterError, "unknown key 'max_sim'"),
    ("[[bound]]\nattack = 'fr'\nmin_ssim = 1\n", ParameterError, "'cipher' is missing"),
    ("[defaults]\npreset = 'quick'\n", DataError, "no [[bound]] entries"),
    ("[[bound]\n", DataError, "not valid TOML"),
])
def test_bad_baselines_are_clear_errors(tmp_path, text, error, fragment):
    with pytest.raises(error) as info:
        load_baseline(write(tmp_path, text))
    assert fragment in str(info.value)


def test_check_runs_missing_results_and_passes(tmp_path, cli_runner):
    baseline = write(tmp_path, BASELINE.format(max_ssim=0.6))
    result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "all 2 bound(s) hold" in result.stdout
    assert len(list((tmp_path / "runs").rglob("result.json"))) == 2


def test_check_fails_on_a_weaker_cipher_using_given_results(tmp_path, cli_runner):
    baseline = write(tmp_path, BASELINE.format(max_ssim=0.6))
    runs = tmp_path / "runs"
    assert cli_runner.invoke(cli, ["check", "--baseline", str(baseline), "--out", str(runs)]).exit_code == 0
    # Doctor the stored proposed/fr result: the cipher now "leaks" (SSIM 0.95 > 0.6).
    for path in runs.rglob("result.json"):
        document = json.loads(path.read_text())
        if document["cipher"]["name"] == "proposed":
            ssim = document["metrics"]["ssim"]  # every image's value with the mean, or check refuses it
            ssim.update(mean=0.95, values=[0.95] * len(ssim["values"]))
            path.write_text(json.dumps(document))
    result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), str(runs)])
    assert result.exit_code == 1, result.output
    assert "REGRESSION" in result.stdout and "1 regression(s) in 2 bound(s)" in result.stdout


def test_check_fails_when_an_attack_stops_working(tmp_path, cli_runner):
    # fr restores plain exactly (nothing to fold): the bound that breaks is one on proposed.
    text = BASELINE.format(max_ssim=0.6).replace('cipher = "plain"', 'cipher = "proposed"')
    text = text.replace("min_ssim = 0.2", "min_ssim = 0.99")
    result = cli_runner.invoke(cli, ["check", "--baseline", str(write(tmp_path, text))])
    assert result.exit_code == 1
    assert "REGRESSION" in result.stdout


def test_check_bad_input_exits_2(tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["check", "--baseline", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


@pytest.mark.parametrize("text, fragment", [
    ('[[bound]]\ncipher = "proposed"\nattack = "fr"\nmax_ssim = "abc"\n', "max_ssim must be a number"),
    ('defaults = 3\n[[bound]]\ncipher = "proposed"\nattack = "fr"\nmax_ssim = 0.3\n', "[defaults] must be a table"),
    ('bound = [1]\n', "a [[bound]] must be a table"),
    ('[[bound]]\ncipher = "proposed"\nattack = "fr"\nmax_ssim = 0.3\nparams = "x"\n', "params must be a table"),
    ('[[bound]]\ncipher = "proposed"\nattack = "fr"\nmax_ssim = 0.3\nparams = { block_size = [4] }\n',
     "params must be a table of single values"),
    ('[[bound]]\ncipher = "proposed"\nattack = "fr"\nmax_ssim = 0.3\nlimit = "x"\n', "limit must be an integer"),
    ('[[bound]]\ncipher = 5\nattack = "fr"\nmax_ssim = 0.3\n', "'cipher' is missing or not a name"),
])
def test_malformed_baselines_are_one_line_errors_with_status_2(tmp_path, cli_runner, text, fragment):
    baseline = tmp_path / "b.toml"
    baseline.write_text(text)
    result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_a_result_that_is_not_a_document_is_an_input_error(tmp_path, cli_runner):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "result.json").write_text("[1]")
    baseline = tmp_path / "b.toml"
    baseline.write_text('[[bound]]\ncipher = "proposed"\nattack = "fr"\nmax_ssim = 0.3\n')
    result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), str(tmp_path / "r")])
    assert result.exit_code == 2 and "is not a ppattack result" in result.stderr


def test_a_result_without_the_bounded_measurement_is_an_input_error(tmp_path, cli_runner):
    """A result made with --no-accuracy cannot answer a min_accuracy bound: an error naming the
    file (exit 2), not a silent re-run and not a regression."""
    run = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--limit", "32", "--no-accuracy",
                                  "--out", str(tmp_path / "given")])
    assert run.exit_code == 0, run.output
    baseline = tmp_path / "b.toml"
    baseline.write_text('[defaults]\nlimit = 32\n[[bound]]\ncipher = "proposed"\nattack = "fr"\nmin_accuracy = 0.2\n')
    result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), str(tmp_path / "given"),
                                     "--out", str(tmp_path / "made")])
    assert result.exit_code == 2, result.output
    assert "holds no measurement for min_accuracy" in result.stderr and "result.json" in result.stderr
    assert not (tmp_path / "made").exists()


SEEDS_BASELINE = """
[defaults]
dataset = "samples"
preset = "quick"
limit = 8

[[bound]]
cipher = "proposed"
attack = "fr"
seeds = [0, 1, 2]
max_ssim = 0.6
"""


def test_a_bound_over_seeds_reads_one_case_per_seed(tmp_path):
    (bound,) = load_baseline(write(tmp_path, SEEDS_BASELINE))
    assert bound.seeds == (0, 1, 2) and bound.case.seed == 0
    assert [case.seed for case in bound.cases()] == [0, 1, 2]
    assert {case.cipher for case in bound.cases()} == {"proposed"}
    # A bound's own seed wins over the defaults' seeds.
    text = SEEDS_BASELINE.replace("seeds = [0, 1, 2]\n", "seed = 4\n").replace("limit = 8", "limit = 8\nseeds = [1, 2]")
    (single,) = load_baseline(write(tmp_path, text))
    assert single.seeds == () and single.cases() == [single.case] and single.case.seed == 4


@pytest.mark.parametrize("line, fragment", [
    ("seeds = [0, 1, 2]\nseed = 1", "give seed or seeds, not both"),
    ("seeds = []", "seeds must be a list of integers >= 0"),
    ("seeds = 3", "seeds must be a list of integers >= 0"),
    ("seeds = [0, -1]", "seeds must be a list of integers >= 0"),
    ("seeds = [1, 1]", "seeds must be distinct"),
])
def test_bad_seeds_are_clear_errors(tmp_path, line, fragment):
    text = SEEDS_BASELINE.replace("seeds = [0, 1, 2]", line)
    with pytest.raises(ParameterError) as info:
        load_baseline(write(tmp_path, text))
    assert fragment in str(info.value)


def test_a_bound_over_seeds_holds_the_median(tmp_path, cli_runner):
    """Three runs, one per seed; the bound judges their median: one bad seed out of three passes,
    two fail (a bound read from the first seed or the mean would decide otherwise)."""
    baseline = write(tmp_path, SEEDS_BASELINE)
    runs = tmp_path / "runs"
    made = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), "--out", str(runs)])
    assert made.exit_code == 0, made.output
    paths = sorted(runs.rglob("result.json"), key=lambda p: json.loads(p.read_text())["config"]["seed"])
    assert [json.loads(p.read_text())["config"]["seed"] for p in paths] == [0, 1, 2]

    def doctor(values):
        for path, value in zip(paths, values):
            document = json.loads(path.read_text())
            ssim = document["metrics"]["ssim"]  # every image's value with the mean, or check refuses it
            ssim.update(mean=value, values=[value] * len(ssim["values"]))
            path.write_text(json.dumps(document))
        return cli_runner.invoke(cli, ["check", "--baseline", str(baseline), str(runs)])

    one_bad = doctor([0.95, 0.10, 0.30])  # mean 0.45, median 0.30: holds
    assert one_bad.exit_code == 0, one_bad.output
    (verdict,) = check(load_baseline(baseline), [runs])
    assert verdict.measured == 0.30 and verdict.per_seed == ((0, 0.95), (1, 0.10), (2, 0.30))
    assert verdict.label().endswith("median of seeds 0: 0.950, 1: 0.100, 2: 0.300")
    two_bad = doctor([0.10, 0.70, 0.65])  # first seed 0.10, mean 0.48, median 0.65: a regression
    assert two_bad.exit_code == 1 and "REGRESSION" in two_bad.stdout, two_bad.output


def test_a_check_trains_the_accuracy_classifiers_only_for_a_bound_on_accuracy(tmp_path):
    """SSIM bounds leave accuracy unmeasured (the classifiers cost more than the attack at the cifar
    preset); a min_accuracy bound on the same case measures it in the one run both share."""
    text = BASELINE.format(max_ssim=0.6) + '\n[[bound]]\ncipher = "proposed"\nattack = "fr"\nmin_accuracy = 0.05\n'
    verdicts = check(load_baseline(write(tmp_path, text)), out_dir=tmp_path / "runs")
    assert [v.bound for v in verdicts] == ["max_ssim", "min_ssim", "min_accuracy"]
    assert verdicts[2].measured is not None
    accuracy = {json.loads(p.read_text())["cipher"]["name"]: json.loads(p.read_text())["accuracy"]
                for p in (tmp_path / "runs").rglob("result.json")}
    assert len(list((tmp_path / "runs").rglob("result.json"))) == 2  # proposed/fr ran once
    assert accuracy["proposed"]["protected_model_on_encrypted"] is not None
    assert accuracy["plain"]["protected_model_on_encrypted"] is None
