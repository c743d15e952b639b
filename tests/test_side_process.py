"""A positive control evaluated in a second process beside its attack (audit --budget cpu)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
import torch

from ppattack.errors import ParameterError
from ppattack.harness import RunConfig, run
from ppattack.runtime.side_process import SideProcess, SideProcessLost


# -- targets the spawned processes import by name ------------------------------------------------
def threads_and_value(value: int) -> tuple[int, int]:
    return torch.get_num_threads(), value * 2


def refuse(text: str) -> None:
    raise ParameterError(text)


def die() -> None:
    os._exit(3)


def warn_and_return() -> str:
    logging.getLogger("ppattack.side-test").warning("a warning from the side")
    return "done"


def sleep_long() -> None:
    time.sleep(120)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


# -- the side process -----------------------------------------------------------------------------
def test_the_side_gets_half_the_threads_and_this_process_the_rest_until_the_block_ends(two_threads):
    with SideProcess(threads_and_value, (21,)) as side:
        assert torch.get_num_threads() == 1
        assert side.result() == (1, 42)
        assert side.seconds is not None and side.seconds >= 0
    assert torch.get_num_threads() == 2


def test_an_error_in_the_side_is_raised_here_with_its_type(two_threads):
    with SideProcess(refuse, ("plain has no key",)) as side:
        with pytest.raises(ParameterError, match="plain has no key"):
            side.result()


def test_a_side_that_dies_is_reported_lost(two_threads):
    with SideProcess(die) as side:
        with pytest.raises(SideProcessLost, match="exit code 3"):
            side.result()


def test_the_side_s_log_records_reach_this_process_s_loggers(two_threads, caplog):
    with caplog.at_level(logging.WARNING), SideProcess(warn_and_return) as side:
        assert side.result() == "done"
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("ppattack.side-test", "a warning from the side")]


def test_leaving_the_block_early_stops_the_side_and_returns_the_threads(two_threads):
    with pytest.raises(KeyboardInterrupt):
        with SideProcess(sleep_long) as side:
            raise KeyboardInterrupt
    assert not side._process.is_alive()
    assert torch.get_num_threads() == 2


# -- the control beside its attack ----------------------------------------------------------------
def test_a_control_beside_the_attack_equals_the_control_after_it(two_threads, tmp_path, monkeypatch):
    """Same data, roles, seed and one thread each way: the same control to the last bit (each
    way with a cache of its own, so that neither reads the other's trained network)."""
    config = RunConfig(cipher="pe", attack="itn", control=True, accuracy=False, seed=3, limit=8,
                       params={"attack.steps": 12, "attack.eval_every": 6})
    monkeypatch.setenv("PPATTACK_CACHE", str(tmp_path / "beside"))
    beside = run(config, control_beside=True)
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("PPATTACK_CACHE", str(tmp_path / "after"))
    torch.set_num_threads(1)
    after = run(config)
    assert beside.record.control.ran and after.record.control.ran
    assert beside.record.control.ssim == after.record.control.ssim
    assert beside.record.control.psnr == after.record.control.psnr
    assert beside.record.control.params == after.record.control.params
    assert beside.record.metrics.ssim.values == after.record.metrics.ssim.values


def test_without_threads_to_split_the_control_runs_after_the_attack(monkeypatch):
    """One thread: no side process is started (the control is evaluated in this process)."""
    import ppattack.harness as harness

    started = []
    monkeypatch.setattr(harness, "SideProcess", lambda *a, **k: started.append(a) or pytest.fail("no side"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run(RunConfig(cipher="pe", attack="fr", control=True, accuracy=False, limit=4),
                     control_beside=True)
    finally:
        torch.set_num_threads(before)
    assert result.record.control.ran and not started


def test_a_side_whose_parent_is_killed_ends_too(tmp_path):
    """SIGKILL leaves the parent no chance to stop its side: the side notices and ends."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import torch\n"
        "from ppattack.runtime.side_process import SideProcess\n"
        "from test_side_process import sleep_long\n"
        "if __name__ == '__main__':\n"
        "    torch.set_num_threads(2)\n"
        "    with SideProcess(sleep_long) as side:\n"
        "        print(side._process.pid, flush=True)\n"
        "        time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    side_pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(50):  # it checks every second
        try:
            os.kill(side_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(side_pid, signal.SIGKILL)
    pytest.fail("the side process outlived its killed parent")
