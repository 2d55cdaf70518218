"""Training: the model with its normalisation, the recipe, run files, resume after SIGKILL, strategies, CLI errors.

Tiny runs only (ResNet-20 on 64–128 digits images, 1–5 epochs): the 30-epoch figure is in docs/training.md.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from training_helpers import ENV, free_port, popen, run

from keras_resnet.core.errors import ConfigError
from keras_resnet.data import datasets as data
from keras_resnet.spec.recipe import Recipe

TINY = ["--model", "resnet20", "--dataset", "digits", "--limit", "128", "--batch-size", "64", "--verbose", "2"]


def _history(folder) -> list[dict]:
    with open(os.path.join(folder, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_model_for_dataset_carries_its_normalisation(tmp_path):
    import keras

    from keras_resnet.train.recipe import model_for_dataset

    info = data.info("digits")
    model = model_for_dataset("ResNet20", info, weight_decay=1e-4)
    assert model.name == "resnet20" and model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    norm = model.get_layer("normalization")
    assert np.allclose(np.ravel(norm.mean), info.mean) and np.allclose(np.ravel(norm.variance), info.variance)
    assert model.losses  # the builder's weight decay
    x, _ = data.load("digits", "test")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert np.allclose(loaded.predict(x[:8].astype("float32"), verbose=0), model.predict(x[:8].astype("float32"),
                                                                                            verbose=0), atol=1e-5)
    with pytest.raises(ConfigError, match="unknown model"):
        model_for_dataset("resnet21", info)


def test_mixed_precision_model_keeps_a_float32_classifier():
    import keras

    from keras_resnet.train.recipe import model_for_dataset

    model = model_for_dataset("resnet20", data.info("digits"), mixed_precision=True)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert model.get_layer("conv1_conv").compute_dtype == "float16"
    assert model.get_layer("predictions").compute_dtype == "float32" and model.output.dtype == "float32"


def test_schedule_step_cosine_and_warmup():
    from keras_resnet.model.schedules import ResNetSchedule as schedule

    step = schedule(0.1, 100, 10, 0.01, "step")
    values = [float(step(s)) for s in (0, 9, 10, 49, 50, 74, 75, 99)]
    assert np.allclose(values, [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    cosine = schedule(0.2, 100, 0, 0.0, "cosine")
    assert np.allclose([float(cosine(s)) for s in (0, 50, 100)], [0.2, 0.1, 0.0], atol=1e-6)
    assert schedule.from_config(step.get_config()).get_config() == step.get_config()


@pytest.mark.slow
def test_train_api_writes_the_run_and_resumes_a_finished_run(tmp_path):
    from keras_resnet.train.loop import train

    out = tmp_path / "run"
    recipe = Recipe(model="resnet20", dataset="digits", epochs=2, batch_size=64, limit=128)
    summary = train(recipe, str(out), verbose=0)
    for name in ("best.keras", "last.keras", "history.csv", "summary.json", "curves.png"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["epoch"] for r in _history(out)] == ["1", "2"]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["model"] == "resnet20" and saved["epochs_completed"] == 2 and saved["recipe"]["lr"] == 0.05
    assert saved["recipe"]["weight_decay"] == 1e-4 and saved["recipe"]["momentum"] == 0.9
    for key in ("test_accuracy", "images_per_s", "wall_time_s", "train_time_s"):
        assert saved[key] is not None, key
    assert 0 <= saved["metrics"]["test_accuracy"] <= 1 and "test_top5" in saved["metrics"]
    assert summary["test_accuracy"] == saved["test_accuracy"]
    assert not [f for f in os.listdir(out) if ".tmp" in f]
    load = (f"import keras, keras_resnet; m = keras.saving.load_model({str(out / 'best.keras')!r}, "
            "safe_mode=True); print(type(m.optimizer._learning_rate).__name__)")
    loaded = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0 and "ResNetSchedule" in loaded.stdout, loaded.stderr[-1500:]

    again = train(recipe, str(out), verbose=0)
    assert again["epochs_completed"] == 2 and again["resumed_at_epochs"] == [2] and len(_history(out)) == 2
    with pytest.raises(ConfigError, match="different arguments.*batch_size"):
        train(dataclasses.replace(recipe, batch_size=32), str(out), verbose=0)


@pytest.mark.slow
def test_compare_plots_the_degradation_experiment(tmp_path):
    from keras_resnet.train.compare import compare

    result = compare(["plain20", "resnet20"], Recipe(dataset="digits", epochs=1, batch_size=64, limit=64),
                     str(tmp_path), verbose=0)
    assert set(result["runs"]) == {"plain20", "resnet20"}
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plain20" / "best.keras").is_file() and (tmp_path / "compare.json").is_file()


@pytest.mark.slow
def test_cli_trains_with_progress_and_summary(tmp_path):
    out = tmp_path / "cli"
    result = run("train", *TINY, "--epochs", "1", "--schedule", "cosine", "--warmup-epochs", "0.5",
                 "--qat-epochs", "1", "--output", str(out), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "val_accuracy:" in result.stdout and "done: resnet20 on digits" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # the default engine, native Keras 3 QAT, writes qat.keras: an ordinary registered Keras 3 model (safe mode)
    assert summary["qat"]["engine"] == "keras" and summary["qat"]["path"] == str(out / "qat.keras")
    assert 0 <= summary["qat"]["accuracy"] <= 1 and not (out / "qat.h5").exists()
    import keras

    import keras_resnet  # noqa: F401 - registers the QAT layers for loading

    qat_model = keras.saving.load_model(out / "qat.keras")
    assert any(type(layer).__module__ == "keras_resnet.quant.native_layers" for layer in qat_model.layers)
    assert summary["recipe"]["schedule"] == "cosine" and summary["recipe"]["warmup_epochs"] == 0.5
    assert (out / "best.keras").is_file()

    evaluated = run("evaluate", str(out / "best.keras"), "--dataset", "digits", "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["accuracy"] == pytest.approx(
        summary["metrics"]["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_cli_qat_epochs_with_the_tfmot_engine(tmp_path):
    out = tmp_path / "tfmot"  # the default engine's run: test_cli_trains_with_progress_and_summary
    result = run("train", *TINY, "--epochs", "1", "--qat-epochs", "1", "--qat-engine", "tfmot", "--output", str(out),
                 "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["qat"]["engine"] == "tfmot" and summary["qat"]["path"] == str(out / "qat.h5")
    assert (out / "qat.h5").is_file() and 0 <= summary["qat"]["accuracy"] <= 1 and not (out / "qat.keras").exists()
    again = run("train", *TINY, "--epochs", "1", "--qat-epochs", "1", "--qat-engine", "tfmot", "--output", str(out))
    assert again.returncode == 0 and f"QAT: keeping {out / 'qat.h5'}" in again.stdout


def test_train_and_qat_share_one_default_engine():
    from keras_resnet.cli import main as cli
    from keras_resnet.spec.fields import DEFAULT_QAT_ENGINE, QAT_ENGINES

    assert DEFAULT_QAT_ENGINE in QAT_ENGINES
    assert cli.parser_for("train").parse_args([]).qat_engine == DEFAULT_QAT_ENGINE
    assert cli.parser_for("qat").parse_args(["m.keras", "--dataset", "digits", "-o", "q"]).engine == DEFAULT_QAT_ENGINE
    result = run("train", "--qat-engine", "onnx")
    assert result.returncode != 0 and "--qat-engine: invalid choice: 'onnx'" in result.stderr


def test_help_documents_the_recipe():
    result = run("train", "--help")
    assert result.returncode == 0
    for text in ("--model", "--dataset", "--epochs", "--batch-size", "--output", "--schedule", "--warmup-epochs",
                 "--mixed-precision", "--strategy", "momentum 0.9", "resume"):
        assert text in result.stdout, text


SLOW = pytest.mark.slow  # the command imports TensorFlow before it fails; argparse errors come before that


@pytest.mark.parametrize("args, message", [
    pytest.param(["--model", "resnet21"], "unknown model 'resnet21'", marks=SLOW),
    pytest.param(["--dataset", "mnist"], "unknown dataset 'mnist'", marks=SLOW),
    (["--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    pytest.param(["--qat-epochs", "-1"], "--qat-epochs must be >= 0", marks=SLOW),
    (["--batch-size", "-4"], "argument --batch-size: expected a positive integer, got '-4'"),
    pytest.param(["--output", "FILE"], "is not a folder", marks=SLOW),
    pytest.param(["--dataset", "cifar10", "--data-dir", "EMPTY"], "cifar-10-batches-py", marks=SLOW),
    pytest.param(["--dataset", "folder:EMPTY"], "no images", marks=SLOW),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "FILE").write_text("not a folder")
    (tmp_path / "EMPTY" / "a").mkdir(parents=True)
    args = [str(tmp_path / a) if a in ("FILE", "EMPTY") else a.replace("EMPTY", str(tmp_path / "EMPTY"))
            for a in args]
    if "--output" not in args:
        args += ["--output", str(tmp_path / "out")]
    result = run("train", *args, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.startswith("keras-resnet train: error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(lines) == 1 and message in lines[0], result.stderr[-2000:]


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    out = tmp_path / "killed"
    args = ["train", *TINY, "--epochs", "5", "--output", str(out)]
    state = out / "backup" / "state.json"
    process = popen(*args)
    deadline = time.time() + 240
    epoch = 0
    while time.time() < deadline and process.poll() is None:
        try:
            epoch = json.loads(state.read_text())["epoch"]
        except (OSError, ValueError):
            epoch = 0
        if epoch >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed: " + process.communicate()[1][-2000:]
    process.send_signal(signal.SIGKILL)
    process.communicate()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 2 <= killed_at < 5

    result = run(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming after epoch {killed_at}" in result.stdout
    assert f"Epoch {killed_at + 1}/5" in result.stdout and "Epoch 1/5" not in result.stdout
    assert [int(r["epoch"]) for r in _history(out)] == [1, 2, 3, 4, 5]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_completed"] == 5 and summary["resumed_at_epochs"] == [killed_at]
    assert (out / "best.keras").is_file() and (out / "last.keras").is_file()
    assert 1 <= summary["best_epoch"] <= 5


MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_resnet.spec.recipe import Recipe
    from keras_resnet.train.loop import train
    summary = train(Recipe(model="resnet20", dataset="digits", epochs=1, batch_size=64, limit=128), sys.argv[1],
                    strategy="mirrored", verbose=0)
    print(json.dumps(summary))
""")


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus(tmp_path):
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path / "m")], env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["distribution"] == {"strategy": "MirroredStrategy", "replicas": 2}
    assert summary["recipe"]["batch_size"] == 64 and (tmp_path / "m" / "best.keras").is_file()


@pytest.mark.slow
def test_multiworker_two_processes_only_the_chief_writes(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(popen("train", *TINY, "--epochs", "1", "--strategy", "multiworker", "--json",
                               "--output", str(tmp_path / f"w{index}"), env={"TF_CONFIG": json.dumps(config)}))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    chief = json.loads(outputs[0][0].strip().splitlines()[-1])
    other = json.loads(outputs[1][0].strip().splitlines()[-1])
    assert chief["distribution"]["replicas"] == 2 and chief["distribution"]["strategy"].startswith("MultiWorker")
    assert chief["test_accuracy"] == other["test_accuracy"]  # one model, metrics reduced over both workers
    assert (tmp_path / "w0" / "summary.json").is_file() and (tmp_path / "w0" / "best.keras").is_file()
    assert not (tmp_path / "w1").exists()
