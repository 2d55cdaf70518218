"""Run folders: one training run per --output (the run lock), a stale lock of a killed run taken over, leftovers
of killed runs removed, and a diverging run stopped with the last good epoch kept (issue 10, item 3 and 7)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from keras_resnet.core import runlock
from keras_resnet.core.errors import ConfigError, OutputError

from .conftest import ENV

HOLD = textwrap.dedent("""
    import sys, time
    from keras_resnet.core import runlock
    with runlock.hold(sys.argv[1], "the run"):
        print("locked", flush=True)
        time.sleep(120)
""")


def _holder(folder) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_run_is_refused_naming_the_first(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(OutputError, match=f"^runs/x is in use by process {proc.pid}$"):
            runlock.hold(str(tmp_path), "runs/x").__enter__()
        owner = json.loads((tmp_path / runlock.LOCK_NAME).read_text())
        assert owner["pid"] == proc.pid and owner["host"] == runlock._host()
    finally:
        proc.kill()
        proc.wait()
    # SIGKILL left the file; the kernel dropped the flock: the next run takes it over
    assert (tmp_path / runlock.LOCK_NAME).exists()
    with runlock.hold(str(tmp_path), "runs/x") as lock:
        assert lock.took_over["pid"] == proc.pid
        assert json.loads((tmp_path / runlock.LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / runlock.LOCK_NAME).exists()  # released: removed


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / runlock.LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": runlock._host()}))
    with runlock.hold(str(tmp_path)) as lock:
        assert lock.took_over["pid"] == dead.pid


def test_a_live_pid_is_respected_even_without_flock(tmp_path, monkeypatch):
    """File systems whose flock does not exclude: the pid in the file still does."""
    monkeypatch.setattr(runlock.RunLock, "_flock", lambda self, fd: True)
    (tmp_path / runlock.LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": runlock._host()}))
    with pytest.raises(OutputError, match=f"in use by process {os.getppid()}$"):
        runlock.hold(str(tmp_path), "runs/x").__enter__()


def test_another_hosts_lock_is_not_guessed_at(tmp_path):
    (tmp_path / runlock.LOCK_NAME).write_text(json.dumps({"pid": 4242, "host": "elsewhere"}))
    with pytest.raises(OutputError, match="in use by process 4242 on elsewhere .*delete"):
        runlock.hold(str(tmp_path), "runs/x").__enter__()


def test_garbage_lock_file_is_taken_over(tmp_path):
    (tmp_path / runlock.LOCK_NAME).write_bytes(b"\xff\x00 not json")
    with runlock.hold(str(tmp_path)):
        pass


def test_leftovers_of_killed_runs_are_removed(tmp_path):
    (tmp_path / "backup").mkdir()
    leftovers = [".history.k2j3h4g5.tmp.csv", ".best.a1b2c3d4.tmp.keras", "history.csv.tmp-12345",
                 "backup/.epoch-3.zz_9x8y7.tmp.keras", "backup/.state.abcdefgh.tmp.json"]
    kept = ["history.csv", "best.keras", ".hidden", "notes.tmp", "backup/epoch-3.keras", "backup/state.json",
            ".keras-resnet.lock"]
    for name in leftovers + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / ".curves.q1w2e3r4.tmp.png").mkdir()  # a temporary folder
    removed = runlock.remove_leftovers(str(tmp_path))
    assert sorted(os.path.relpath(p, tmp_path) for p in removed) == sorted(leftovers + [".curves.q1w2e3r4.tmp.png"])
    assert all((tmp_path / name).exists() for name in kept)


def test_check_finite_losses():
    from keras_resnet.train.callbacks import check_finite_losses
    from keras_resnet.train.state import RunState

    state = RunState("/nowhere", write=False)
    check_finite_losses({"loss": 0.5, "val_loss": 1.0, "accuracy": float("nan")}, 1, state, "runs/x")
    with pytest.raises(ConfigError, match="diverged at epoch 1 .loss nan.*no epoch completed"):
        check_finite_losses({"loss": float("nan")}, 1, state, "runs/x")
    state.epoch = 2
    with pytest.raises(ConfigError, match=r"epoch 3 \(val_loss inf\).*runs/x keeps epoch 2, the last good one"):
        check_finite_losses({"loss": 0.1, "val_loss": math.inf}, 3, state, "runs/x")


# ---- real training runs (slow) -----------------------------------------------------------------------------------


def _keras_resnet(*args: str) -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "keras-resnet")
    return [script if os.path.exists(script) else sys.executable, *([] if os.path.exists(script) else
                                                                     ["-m", "keras_resnet.cli"]), *args]


TRAIN = ["train", "--model", "resnet20", "--dataset", "digits", "--epochs", "3", "--batch-size", "64",
         "--limit", "256", "--verbose", "0"]


@pytest.mark.slow
def test_two_runs_on_one_output_then_a_killed_run_resumes(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(_keras_resnet(*TRAIN, "--output", str(out)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 300
        while not (out / runlock.LOCK_NAME).exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)
        second = subprocess.run(_keras_resnet(*TRAIN, "--output", str(out)), capture_output=True, text=True,
                                env=ENV, timeout=300)
        assert second.returncode == 2, second.stderr[-2000:]
        errors = [line for line in second.stderr.splitlines() if "error:" in line]
        assert errors == [f"keras-resnet train: error: {out} is in use by process {first.pid}"], second.stderr
        # a kill mid-run (from outside: SIGKILL) leaves the lock file and possibly temporary files
        while not (out / "backup" / "state.json").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    (out / "history.csv.tmp-99999").write_text("leftover")
    third = subprocess.run(_keras_resnet(*TRAIN, "--output", str(out), "--json"), capture_output=True, text=True,
                           env=ENV, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    summary = json.loads(third.stdout.strip().splitlines()[-1])
    assert summary["epochs_completed"] == 3 and summary["resumed_at_epochs"]
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name == runlock.LOCK_NAME]


@pytest.mark.slow
def test_a_diverging_run_stops_and_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    """The loss turns NaN in epoch 2 (simulated: the real cause, a huge learning rate, is not reproducible
    to the epoch): train() raises, and best.keras/last.keras/backup stay at epoch 1."""
    from keras_resnet.spec.recipe import Recipe
    from keras_resnet.train import callbacks as callbacks_lib
    from keras_resnet.train import loop as train_lib

    real = callbacks_lib.check_finite_losses

    def nan_in_epoch_2(logs, epoch, state, shown):
        if epoch == 2:
            logs["loss"] = float("nan")
        return real(logs, epoch, state, shown)

    monkeypatch.setattr(callbacks_lib, "check_finite_losses", nan_in_epoch_2)
    out = tmp_path / "run"
    recipe = Recipe(model="resnet20", dataset="digits", epochs=3, batch_size=64, limit=128)
    with pytest.raises(ConfigError, match=f"diverged at epoch 2 .loss nan.*{out} keeps epoch 1, the last good"):
        train_lib.train(recipe, str(out), verbose=0)
    state = json.loads((out / "backup" / "state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert (out / "best.keras").is_file() and (out / "last.keras").is_file()
    assert not (out / "summary.json").exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name == runlock.LOCK_NAME]


@pytest.mark.slow
def test_a_huge_learning_rate_exits_2_with_one_line(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(_keras_resnet(*TRAIN, "--lr", "1e12", "--output", str(out)), capture_output=True,
                          text=True, env=ENV, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "training diverged at epoch 1" in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_folders_are_removed(tmp_path):
    host = runlock._host()
    stale = tmp_path / f".keras-resnet-convert-{host}-{_dead_pid()}-x1y2z3"
    live = tmp_path / f".keras-resnet-convert-{host}-{os.getpid()}-a1b2c3"
    other_host = tmp_path / f".keras-resnet-convert-elsewhere-{_dead_pid()}-q1"
    for folder in (stale, live, other_host):
        (folder / "saved_model").mkdir(parents=True)
    assert runlock.remove_stale_temporaries(str(tmp_path), "convert") == [str(stale)]
    assert live.exists() and other_host.exists() and not stale.exists()
    assert runlock.temporary_prefix("convert") == f".keras-resnet-convert-{host}-{os.getpid()}-"


@pytest.mark.slow
def test_conversion_works_next_to_its_output_and_cleans_up(small_keras, tmp_path, monkeypatch):
    import tempfile

    from keras_resnet.export import convert as convert_lib
    from keras_resnet.export import trace

    stale = tmp_path / f".keras-resnet-convert-{runlock._host()}-{_dead_pid()}-killed"
    (stale / "saved_model" / "variables").mkdir(parents=True)
    seen = []
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(trace.tempfile, "mkdtemp", mkdtemp)
    convert_lib.convert(small_keras, str(tmp_path / "out.tflite"), validation_samples=8, min_agreement=0.0)
    # ours next to the output, not in /tmp; the converter's own temporary SavedModel inside ours
    assert seen and os.path.dirname(seen[0]) == str(tmp_path)
    assert all(os.path.commonpath([p, seen[0]]) == seen[0] for p in seen), seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tflite"]  # the stale one and ours are gone
