"""Every attack's recorded parameters, pinned: ``Attack.params`` goes into result.json and into
the identity of every cached network, so deriving it from the constructor's signature must not
change one value, type or position. The expected values were printed by the code that wrote
each parameter three times (signature, assignment, ``params``), before the change."""
from __future__ import annotations

import inspect
import json

import pytest

import ppattack
from ppattack.cli import cli
from ppattack.errors import ParameterError

from cli_checks import refused

#: (attack, budget) -> params, in order, as recorded before parameters were declared once
#: (the budget's key since renamed from ``preset`` to ``budget``, issue 30).
PINNED = {
    ("cpa", "quick"): {'budget': 'quick', 'threat': 'cpa', 'seed': 0},
    ("cpa", "cifar"): {'budget': 'cifar', 'threat': 'cpa', 'seed': 0},
    ("cpa", "paper"): {'budget': 'paper', 'threat': 'cpa', 'seed': 0},
    ("fr", "quick"): {'budget': 'quick', 'threat': 'coa', 'seed': 0, 'solver': 'auto', 'grayscale': False, 'icm_iterations': 10},
    ("fr", "cifar"): {'budget': 'cifar', 'threat': 'coa', 'seed': 0, 'solver': 'auto', 'grayscale': False, 'icm_iterations': 20},
    ("fr", "paper"): {'budget': 'paper', 'threat': 'coa', 'seed': 0, 'solver': 'auto', 'grayscale': False, 'icm_iterations': 20},
    ("gan", "smoke"): {'budget': 'smoke', 'threat': 'coa+public', 'seed': 0, 'block_size': None, 'g_width': 8, 'd_width': 4, 'steps': 3, 'epochs': None, 'batch_size': 4, 'lr_g': 0.0002, 'lr_d': 0.0002, 'augment': False, 'class_weight': 0.0, 'c_width': 4, 'polarity': True, 'g_average': 0.0},
    ("gan", "quick"): {'budget': 'quick', 'threat': 'coa+public', 'seed': 0, 'block_size': None, 'g_width': None, 'd_width': 16, 'steps': 200, 'epochs': None, 'batch_size': 32, 'lr_g': 0.0002, 'lr_d': 0.0002, 'augment': False, 'class_weight': 0.0, 'c_width': 16, 'polarity': True, 'g_average': 0.0},
    ("gan", "cifar"): {'budget': 'cifar', 'threat': 'coa+public', 'seed': 0, 'block_size': None, 'g_width': None, 'd_width': 64, 'steps': 3000, 'epochs': None, 'batch_size': 64, 'lr_g': 0.0002, 'lr_d': 0.0002, 'augment': False, 'class_weight': 0.0, 'c_width': 32, 'polarity': True, 'g_average': 0.0},
    ("gan", "audit"): {'budget': 'audit', 'threat': 'coa+public', 'seed': 0, 'block_size': None, 'g_width': None, 'd_width': 64, 'steps': 250, 'epochs': None, 'batch_size': 64, 'lr_g': 0.0002, 'lr_d': 0.0002, 'augment': False, 'class_weight': 0.0, 'c_width': 32, 'polarity': True, 'g_average': 0.0},
    ("gan", "paper"): {'budget': 'paper', 'threat': 'coa+public', 'seed': 0, 'block_size': None, 'g_width': None, 'd_width': 64, 'steps': None, 'epochs': 25, 'batch_size': 64, 'lr_g': 0.0002, 'lr_d': 0.0002, 'augment': False, 'class_weight': 0.0, 'c_width': 64, 'polarity': True, 'g_average': 0.0},
    ("itn", "smoke"): {'budget': 'smoke', 'threat': 'coa+public', 'seed': 0, 'width': 4, 'depth': 2, 'steps': 3, 'epochs': None, 'batch_size': 4, 'optimizer': 'adam', 'lr': 0.001, 'ssim_weight': 1.0, 'augment': False, 'val_fraction': 0.25, 'eval_every': 3, 'schedule': 'constant', 'canonical': True},
    ("itn", "quick"): {'budget': 'quick', 'threat': 'coa+public', 'seed': 0, 'width': 16, 'depth': 4, 'steps': 250, 'epochs': None, 'batch_size': 16, 'optimizer': 'adam', 'lr': 0.003, 'ssim_weight': 1.0, 'augment': False, 'val_fraction': 0.1, 'eval_every': 50, 'schedule': 'cosine', 'canonical': True},
    ("itn", "cifar"): {'budget': 'cifar', 'threat': 'coa+public', 'seed': 0, 'width': 32, 'depth': 4, 'steps': 2000, 'epochs': None, 'batch_size': 64, 'optimizer': 'adam', 'lr': 0.001, 'ssim_weight': 1.0, 'augment': True, 'val_fraction': 0.05, 'eval_every': 250, 'schedule': 'constant', 'canonical': True},
    ("itn", "cpu"): {'budget': 'cpu', 'threat': 'coa+public', 'seed': 0, 'width': 16, 'depth': 4, 'steps': 1600, 'epochs': None, 'batch_size': 64, 'optimizer': 'adam', 'lr': 0.002, 'ssim_weight': 1.0, 'augment': True, 'val_fraction': 0.05, 'eval_every': 300, 'schedule': 'cosine', 'canonical': True},
    ("itn", "paper"): {'budget': 'paper', 'threat': 'coa+public', 'seed': 0, 'width': 64, 'depth': 4, 'steps': None, 'epochs': 50, 'batch_size': 128, 'optimizer': 'sgd', 'lr': 0.01, 'ssim_weight': 0.0, 'augment': False, 'val_fraction': 0.05, 'eval_every': None, 'schedule': 'constant', 'canonical': True},
    ("jigsaw", "quick"): {'budget': 'quick', 'threat': 'coa+public', 'seed': 0, 'block_size': 4, 'compat': 'mgc', 'reg': 1.0, 'top': 3, 'max_public': 500},
    ("jigsaw", "cifar"): {'budget': 'cifar', 'threat': 'coa+public', 'seed': 0, 'block_size': 4, 'compat': 'mgc', 'reg': 1.0, 'top': 3, 'max_public': 500},
    ("jigsaw", "paper"): {'budget': 'paper', 'threat': 'coa+public', 'seed': 0, 'block_size': 16, 'compat': 'mgc', 'reg': 1.0, 'top': 3, 'max_public': 500},
    ("keyrec", "quick"): {'budget': 'quick', 'threat': 'coa+public', 'seed': 0, 'max_ciphertexts': 1000, 'max_public': 1000, 'mirror_public': 1000, 'mirror_steps': 0, 'mirror_width': 32, 'compat': 'mgc', 'reg': 1.0, 'restarts': 8},
    ("keyrec", "cifar"): {'budget': 'cifar', 'threat': 'coa+public', 'seed': 0, 'max_ciphertexts': 5000, 'max_public': 2000, 'mirror_public': 10000, 'mirror_steps': 600, 'mirror_width': 32, 'compat': 'mgc', 'reg': 1.0, 'restarts': 8},
    ("keyrec", "paper"): {'budget': 'paper', 'threat': 'coa+public', 'seed': 0, 'max_ciphertexts': 100, 'max_public': 200, 'mirror_public': 200, 'mirror_steps': 0, 'mirror_width': 32, 'compat': 'mgc', 'reg': 1.0, 'restarts': 8},
    ("kpa", "quick"): {'budget': 'quick', 'threat': 'kpa', 'seed': 0},
    ("kpa", "cifar"): {'budget': 'cifar', 'threat': 'kpa', 'seed': 0},
    ("kpa", "paper"): {'budget': 'paper', 'threat': 'kpa', 'seed': 0},
    ("model-leak", "quick"): {'budget': 'quick', 'threat': 'model', 'seed': 0, 'restarts': 8, 'max_ciphertexts': 200},
    ("model-leak", "cifar"): {'budget': 'cifar', 'threat': 'model', 'seed': 0, 'restarts': 8, 'max_ciphertexts': 200},
    ("model-leak", "paper"): {'budget': 'paper', 'threat': 'model', 'seed': 0, 'restarts': 8, 'max_ciphertexts': 200},
    ("sia-gan", "smoke"): {'budget': 'smoke', 'threat': 'coa+public', 'seed': 0, 'block_size': None, 'g_width': 4, 'd_width': 4, 'steps': 3, 'epochs': None, 'batch_size': 4, 'lr_g': 0.0001, 'lr_d': 0.0004, 'augment': False, 'class_weight': 1.0, 'c_width': 4, 'polarity': True, 'g_average': 0.0, 'adaptation': 'auto', 'd_head': 'flatten'},
    ("sia-gan", "quick"): {'budget': 'quick', 'threat': 'coa+public', 'seed': 0, 'block_size': None, 'g_width': 16, 'd_width': 16, 'steps': 150, 'epochs': None, 'batch_size': 16, 'lr_g': 0.0001, 'lr_d': 0.0004, 'augment': True, 'class_weight': 1.0, 'c_width': 8, 'polarity': True, 'g_average': 0.0, 'adaptation': 'auto', 'd_head': 'flatten'},
    ("sia-gan", "cifar"): {'budget': 'cifar', 'threat': 'coa+public', 'seed': 0, 'block_size': None, 'g_width': 64, 'd_width': 32, 'steps': 2500, 'epochs': None, 'batch_size': 64, 'lr_g': 0.0001, 'lr_d': 0.0004, 'augment': True, 'class_weight': 1.0, 'c_width': 16, 'polarity': True, 'g_average': 0.995, 'adaptation': 'auto', 'd_head': 'flatten'},
    ("sia-gan", "paper"): {'budget': 'paper', 'threat': 'coa+public', 'seed': 0, 'block_size': None, 'g_width': 64, 'd_width': 128, 'steps': None, 'epochs': 100, 'batch_size': 64, 'lr_g': 0.0001, 'lr_d': 0.0004, 'augment': True, 'class_weight': 1.0, 'c_width': 64, 'polarity': True, 'g_average': 0.0, 'adaptation': 'auto', 'd_head': 'flatten'},
}

#: (attack, user values at budget quick, seed 3) -> params: values converted as before
#: (``lr=1`` -> 1.0, ``width="8"`` -> 8, ``grayscale=1`` -> True; ``epochs`` kept as given).
PINNED_GIVEN = [
    ("itn", {"lr": 1, "epochs": 2, "width": "8"},
     {'budget': 'quick', 'threat': 'coa+public', 'seed': 3, 'width': 8, 'depth': 4, 'steps': 250, 'epochs': 2, 'batch_size': 16, 'optimizer': 'adam', 'lr': 1.0, 'ssim_weight': 1.0, 'augment': False, 'val_fraction': 0.1, 'eval_every': 50, 'schedule': 'cosine', 'canonical': True}),
    ("gan", {"block_size": 4, "g_width": 32, "class_weight": 1},
     {'budget': 'quick', 'threat': 'coa+public', 'seed': 3, 'block_size': 4, 'g_width': 32, 'd_width': 16, 'steps': 200, 'epochs': None, 'batch_size': 32, 'lr_g': 0.0002, 'lr_d': 0.0002, 'augment': False, 'class_weight': 1.0, 'c_width': 16, 'polarity': True, 'g_average': 0.0}),
    ("fr", {"icm_iterations": 5, "grayscale": 1},
     {'budget': 'quick', 'threat': 'coa', 'seed': 3, 'solver': 'auto', 'grayscale': True, 'icm_iterations': 5}),
    ("sia-gan", {"adaptation": "shared", "steps": 7},
     {'budget': 'quick', 'threat': 'coa+public', 'seed': 3, 'block_size': None, 'g_width': 16, 'd_width': 16, 'steps': 7, 'epochs': None, 'batch_size': 16, 'lr_g': 0.0001, 'lr_d': 0.0004, 'augment': True, 'class_weight': 1.0, 'c_width': 8, 'polarity': True, 'g_average': 0.0, 'adaptation': 'shared', 'd_head': 'flatten'}),
]


def recorded(params: dict) -> str:
    """What result.json holds: the values with their JSON types, in their order."""
    return json.dumps(params)


def test_every_registered_attack_and_budget_is_pinned():
    budgets = {name: list(ppattack.registry.ATTACKS.get(name).budgets) or ["quick", "cifar", "paper"]
               for name in ppattack.list_attacks()}
    assert sorted(PINNED) == sorted((name, b) for name, names in budgets.items() for b in names)


@pytest.mark.parametrize("attack, budget", sorted(PINNED))
def test_params_at_each_budget_are_unchanged(attack, budget):
    params = ppattack.create_attack(attack, budget=budget, device="cpu").params
    assert recorded(params) == recorded(PINNED[attack, budget])
    assert [type(v) for v in params.values()] == [type(v) for v in PINNED[attack, budget].values()]


@pytest.mark.parametrize("attack, given, expected", PINNED_GIVEN)
def test_params_given_by_the_user_are_converted_as_before(attack, given, expected):
    params = ppattack.create_attack(attack, budget="quick", seed=3, device="cpu", **given).params
    assert recorded(params) == recorded(expected)
    assert [type(v) for v in params.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize("name", ppattack.list_attacks())
def test_budget_tables_name_only_declared_parameters(name):
    cls = ppattack.registry.ATTACKS.get(name)
    for budget, values in cls.budgets.items():
        assert set(values) <= set(cls.declared_params()), (budget, sorted(set(values) - set(cls.declared_params())))


def test_a_budget_without_a_needed_value_names_the_parameter():
    with pytest.raises(ParameterError, match="no 'smoke' budget value for icm_iterations"):
        ppattack.create_attack("fr", budget="smoke")
    assert ppattack.create_attack("fr", budget="smoke", icm_iterations=3).icm_iterations == 3


@pytest.mark.parametrize("given, expected", [("False", False), ("TRUE", True), (" true ", True),
                                             (0, False), (1, True), (True, True)])
def test_a_boolean_parameter_reads_true_and_false_in_any_case(given, expected):
    """`--param attack.polarity=False` reaches the attack as the text 'False', which bool()
    turns into True."""
    assert ppattack.create_attack("gan", budget="quick", polarity=given).polarity is expected


def test_a_boolean_parameter_refuses_other_values(tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["run", "--cipher", "plain", "--attack", "gan", "--no-accuracy",
                                     "--param", "attack.polarity=maybe", "--param", "attack.steps=1",
                                     "--out", str(tmp_path / "out")])
    refused(result, "polarity='maybe'", "expected true or false")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ppattack.list_attacks())
def test_the_signature_holds_the_paper_defaults_and_budgets_only_what_they_change(name):
    """The constructor's defaults are the paper's setting; a budget lists only the values it
    changes (issue 30: no table that repeats every value at every budget)."""
    cls = ppattack.registry.ATTACKS.get(name)
    defaults = {k: p.default for k, p in cls.declared_params().items()}
    assert inspect.Parameter.empty not in defaults.values(), "every parameter has a default"
    for budget, values in cls.budgets.items():
        repeated = sorted(k for k, v in values.items() if json.dumps(v) == json.dumps(defaults[k]))
        assert not repeated, f"{name}'s {budget} budget repeats the defaults of {repeated}"
    paper = ppattack.create_attack(name, budget="paper", device="cpu").params
    assert recorded({k: paper[k] for k in defaults}) == recorded(defaults)


def test_a_value_passed_beats_the_budget_even_when_it_equals_the_default():
    itn = ppattack.registry.ATTACKS.get("itn")
    assert itn.declared_params()["width"].default == 64
    assert ppattack.create_attack("itn", budget="quick").width == 16
    assert ppattack.create_attack("itn", budget="quick", width=64).width == 64
    # None is a value like any other when passed to the constructor (create_attack drops it)
    by_epochs = itn(budget="quick", steps=None, epochs=2, device="cpu")
    assert (by_epochs.steps, by_epochs.epochs, by_epochs.lr) == (None, 2, 3e-3)


def test_sia_gan_declares_its_own_paper_defaults_over_gan():
    sia = ppattack.create_attack("sia-gan", budget="paper", device="cpu")
    gan = ppattack.create_attack("gan", budget="paper", device="cpu")
    assert (sia.g_width, sia.d_width, sia.epochs, sia.lr_g, sia.lr_d) == (64, 128, 100, 1e-4, 4e-4)
    assert (gan.g_width, gan.d_width, gan.epochs, gan.lr_g, gan.lr_d) == (None, 64, 25, 2e-4, 2e-4)
    assert ppattack.create_attack("sia-gan", budget="quick", device="cpu", d_width=128).d_width == 128


@pytest.mark.parametrize("attack, param, fragment", [
    ("itn", "attack.steps=-1", "steps must be >= 1"), ("itn", "attack.steps=0", "steps must be >= 1"),
    ("itn", "attack.lr=inf", "learning rates must be finite"), ("gan", "attack.lr_d=nan", "learning rates must be finite"),
    ("sia-gan", "attack.epochs=-2", "epochs must be a finite number > 0"),
    ("itn", "attack.epochs=nan", "epochs must be a finite number > 0, got nan"),
    ("itn", "attack.val_fraction=nan", "val_fraction must lie in [0, 1)"), ("itn", "attack.ssim_weight=-1", "ssim_weight"),
    ("itn", "attack.eval_every=-1", "eval_every >= 0"), ("gan", "attack.g_width=-1", "g_width, d_width and batch_size")])
def test_a_training_budget_that_trains_nothing_is_refused(tmp_path, cli_runner, attack, param, fragment):
    """steps=-1 or 0 reported an untrained network as the attack's result, and lr=inf one
    trained into NaN (exit 0 both), as did ssim_weight=-1, eval_every=-1; val_fraction=nan and
    g_width=-1 failed as unexpected errors (issue 29)."""
    result = cli_runner.invoke(cli, ["run", "--cipher", "plain", "--attack", attack, "--no-accuracy", "--limit", "4",
                                     "--param", param, "--out", str(tmp_path / "out")])
    refused(result, fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("attack, param, fragment", [
    ("fr", "attack.icm_iterations=-1", "icm_iterations must be >= 0"),
    ("keyrec", "attack.reg=nan", "reg must be finite and >= 0"), ("keyrec", "attack.restarts=0", "restarts at least 1"),
    ("jigsaw", "attack.reg=-inf", "reg must be finite and >= 0"), ("jigsaw", "attack.top=0", "top and max_public"),
    ("model-leak", "attack.restarts=0", "restarts and max_ciphertexts"),
    ("model-leak", "attack.max_ciphertexts=-1", "restarts and max_ciphertexts")])
def test_a_solver_parameter_out_of_range_is_refused(tmp_path, cli_runner, attack, param, fragment):
    """fr's icm_iterations=-1, keyrec's reg=nan and model-leak's restarts=-1 ran, exit 0 (keyrec
    with an "All-NaN slice" warning; issue 29)."""
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", attack, "--no-accuracy", "--limit", "4",
                                     "--param", "block_size=4", "--param", param, "--out", str(tmp_path / "out")])
    refused(result, fragment)
    assert not (tmp_path / "out").exists()
