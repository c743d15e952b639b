"""Our own ciphers pass the conformance kit, and the kit catches a broken cipher."""
from __future__ import annotations

import ppattack
from ppattack.testing import CipherConformance

pytest_plugins = ["pytester"]


class TestBuiltinCiphers(CipherConformance):
    cases = [(name, {"block_size": 4} if "block_size" in ppattack.create_cipher(name).params else {},
              (3, 16, 16)) for name in ppattack.list_ciphers()]


BROKEN = '''
import torch
from ppattack.cipher import Cipher, KeyField, log2_factorial
from ppattack.testing import CipherConformance


class OffByOne(Cipher):
    """Row rotation by 1..H-1 whose decrypt forgets to undo it (a deliberate bug)."""
    name = "off-by-one"

    def __init__(self):
        super().__init__()

    def key_fields(self, shape):
        return {"shift": KeyField((1,), high=shape[1] - 1)}

    def key_space_bits(self, shape):
        return 0.0 if shape[1] < 2 else __import__("math").log2(shape[1])

    def compile(self, key, device):
        return int(key.material["shift"][0])

    def apply(self, x, plan, inverse):
        return x.clone() if inverse else torch.roll(x, plan + 1, dims=2)  # BUG: no inverse


class TestBroken(CipherConformance):
    cases = [(OffByOne, {}, (3, 8, 8))]
'''


def test_kit_catches_a_broken_cipher(pytester):
    pytester.makepyfile(test_broken=BROKEN)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-k", "round_trip or seed or key_file")
    result.assert_outcomes(failed=1, passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*test_round_trip*", "*round trip error*"])


def test_kit_runs_installed_ciphers_from_the_command_line(pytester):
    pytester.makepyfile(test_cli_cases='''
from ppattack.testing import CipherConformance

class TestInstalled(CipherConformance):
    cases = None
''')
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "--ppattack-cipher",
                                "proposed:block_size=4@3,8,8", "-k", "round_trip or shape")
    result.assert_outcomes(passed=3)  # round trip, key-file round trip, shape errors


def test_the_kit_runs_the_model_threat_and_refuses_a_cipher_every_attack_declines(monkeypatch):
    import pytest

    from ppattack.attack import Attack
    from ppattack.errors import ParameterError

    given = []
    real_call = Attack.__call__

    def spy(self, view):
        given.append((self.name, view.threat_model, view.model is not None))
        return real_call(self, view)

    monkeypatch.setattr(Attack, "__call__", spy)
    kit, cipher = CipherConformance(), ppattack.create_cipher("proposed", block_size=4)
    kit.test_attacks_run_under_the_harness(cipher, (3, 16, 16))
    assert ("model-leak", "model", True) in given  # the model threat's view carries a model

    def decline(self, view):
        raise ParameterError(f"{self.name} declines")

    monkeypatch.setattr(Attack, "__call__", decline)
    with pytest.raises(AssertionError, match="every registered attack declined cipher proposed"):
        kit.test_attacks_run_under_the_harness(cipher, (3, 16, 16))
