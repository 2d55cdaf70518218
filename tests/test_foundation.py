"""The package's foundation: one-way import layers, a CLI that starts without Keras, options generated from the
dataclasses, and the one place (the CLI) where expected errors become one ``error:`` line.

Quick tier: nothing here trains or converts; only the ``--option zero_init=maybe`` case builds a model.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import pathlib
import subprocess
import sys
import textwrap
import time

import pytest

import keras_resnet
from keras_resnet.cli import main as cli
from keras_resnet.core import errors
from keras_resnet.spec import fields
from keras_resnet.spec.commands import DemoSettings, EvalSpec, QATSpec
from keras_resnet.spec.conversion import ConvertSpec
from keras_resnet.spec.recipe import Recipe, TrainRun
from keras_resnet.spec.specs import BlockOptions

PACKAGE = pathlib.Path(keras_resnet.__file__).parent

# The import layers are the folders: tests/test_layers.py.


def test_builders_never_import_tensorflow_nor_use_tf_keras():
    for module in ("spec/specs.py", "spec/fields.py", "spec/recipe.py", "spec/conversion.py",
                   "spec/commands.py", "cli/main.py", "model/blocks.py", "model/build.py",
                   "model/models.py", "model/schedules.py", "__init__.py"):
        top = ast.parse((PACKAGE / module).read_text()).body  # module level; tf_keras twins import lazily
        imported = {alias.name for node in top if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in top if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name for name in imported if name.split(".")[0] in ("tensorflow", "tf_keras")}, module
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        uses = [node.lineno for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr == "keras" and isinstance(node.value, ast.Name)
                and node.value.id in ("tf", "tensorflow")]
        uses += [node.lineno for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                 for name in ([a.name for a in node.names] + [getattr(node, "module", None) or ""])
                 if name.startswith("tensorflow.keras")]
        assert not uses, f"{path.relative_to(PACKAGE)}:{uses} uses tf.keras; say keras or tf_keras"


# ---- a command line without Keras ------------------------------------------------------------------------------

HEAVY = ("tensorflow", "keras", "tf_keras", "tensorflow_model_optimization")


def _python(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)
    return result, time.perf_counter() - start


def test_importing_the_cli_loads_neither_tensorflow_nor_keras():
    script = f"import sys, keras_resnet.cli.main; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result, seconds = _python("-c", script)
    print(f"import keras_resnet.cli.main: {seconds:.2f} s")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout


def test_help_and_parsing_never_load_keras():
    """--help, models and every SUB --help run in one process that then still has no Keras or TensorFlow."""
    script = textwrap.dedent(f"""
        import contextlib, io, sys
        from keras_resnet.cli.main import COMMANDS, main
        for argv in [["--help"], ["models"], *([name, "--help"] for name in COMMANDS)]:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main(argv)
                except SystemExit as exit:
                    code = exit.code
            assert code == 0, (argv, code)
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    result, _ = _python("-c", script)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout


@pytest.mark.parametrize("argv", [["--help"], ["models"], *([name, "--help"] for name in cli.COMMANDS)],
                         ids=lambda argv: " ".join(argv))
def test_help_and_models_exit_0_with_usage(argv):
    result, seconds = _python("-m", "keras_resnet.cli", *argv)
    print(f"keras-resnet {' '.join(argv)}: {seconds:.2f} s")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    if argv == ["models"]:
        lines = result.stdout.splitlines()
        assert len(lines) == len(keras_resnet.MODELS)
        assert lines[0].split()[:2] == ["resnet18", "ResNet18"] and "resnet1202" in result.stdout
        assert "highway56" in result.stdout
    else:
        assert result.stdout.startswith("usage: keras-resnet"), result.stdout[:200]
    if len(argv) == 2:
        assert result.stdout.startswith(f"usage: keras-resnet {argv[0]} ")
    assert seconds < 20, f"{argv}: {seconds:.1f} s (a sanity bound; the goal is < 1 s)"


def test_usage_lists_every_command_and_bad_commands_exit_2(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"  {name} " in out, name
    assert cli.main([]) == 2
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "keras-resnet: error: unknown command 'frobnicate'; choose from " + ", ".join(cli.COMMANDS)
    assert cli.main(["--version"]) == 0 and capsys.readouterr().out.strip() == keras_resnet.__version__


# ---- options: one definition per option ------------------------------------------------------------------------


def _dests(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions}


@pytest.mark.parametrize("command,classes", [("train", (Recipe, TrainRun)), ("convert", (ConvertSpec,)),
                                             ("qat", (QATSpec,)), ("evaluate", (EvalSpec,)),
                                             ("demo", (DemoSettings,))])
def test_every_dataclass_field_is_an_option_with_help(command, classes):
    actions = _dests(cli.parser_for(command))
    for cls in classes:
        for f in dataclasses.fields(cls):
            assert f.name in actions, f"{cls.__name__}.{f.name} has no option in `keras-resnet {command}`"
            assert actions[f.name].help, f"{cls.__name__}.{f.name} has no help"


def test_convert_and_recipe_flags_by_name():
    convert = {s for a in cli.parser_for("convert")._actions for s in a.option_strings}
    for name in ("--quantize", "--target", "--io-type", "--calibration-data", "--calibration-samples",
                 "--validation-data", "--validation-samples", "--data-dir", "--min-agreement", "--dataset", "--labels",
                 "--mean", "--std", "--resize", "--threads", "--name", "--output", "-o", "--force", "--unsafe", "--json"):
        assert name in convert, name
    train = {s for a in cli.parser_for("train")._actions for s in a.option_strings}
    for name in ("--model", "--dataset", "--data-dir", "--image-size", "--epochs", "--batch-size", "--lr", "--momentum",
                 "--weight-decay", "--schedule", "--warmup-epochs", "--warmup-factor", "--label-smoothing",
                 "--mixed-precision", "--no-augment", "--seed", "--limit", "--option", "--output", "--strategy",
                 "--qat-epochs", "--qat-engine", "--verbose", "--json"):
        assert name in train, name


@pytest.mark.parametrize("command,argv,classes", [
    ("train", [], (Recipe, TrainRun)),
    ("convert", ["m.keras", "-o", "m.tflite"], (ConvertSpec,)),
    ("qat", ["m.keras", "--dataset", "digits", "-o", "q.h5"], (QATSpec,)),
    ("evaluate", ["m.keras"], (EvalSpec,)),
    ("demo", [], (DemoSettings,)),
])
def test_parser_defaults_are_the_dataclass_defaults(command, argv, classes):
    args = cli.parser_for(command).parse_args(argv)
    for cls in classes:
        extra = {"dataset": "digits"} if cls is QATSpec else {}
        assert fields.from_args(cls, args) == cls(**extra), cls.__name__


def test_parsed_values_reach_the_dataclass():
    args = cli.parser_for("train").parse_args(
        ["--model", "ResNet-56", "--epochs", "3", "--lr", "0.05", "--no-augment", "--option", "zero_init=true",
         "--option", "shortcut=B", "--schedule", "cosine", "--mixed-precision"])
    recipe = fields.from_args(Recipe, args)
    assert recipe == Recipe(model="ResNet-56", epochs=3, lr=0.05, augment=False, schedule="cosine",
                            mixed_precision=True, builder_options={"zero_init": True, "shortcut": "B"})
    args = cli.parser_for("convert").parse_args(["m.keras", "-o", "o.tflite", "--quantize", "int8", "--mean",
                                                 "1,2,3", "--min-agreement", "0.5", "--target", "edgetpu"])
    assert fields.from_args(ConvertSpec, args) == ConvertSpec(quantization="int8", mean=(1.0, 2.0, 3.0),
                                                               min_agreement=0.5, target="edgetpu")


def _one_error_line(err: str, prog: str, message: str) -> None:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error:") and message in lines[0], err
    assert "Traceback" not in err


# Rejected while parsing: exit 2 with one error line and nothing else (no usage block).
PARSE_ERRORS = [
    (["convert", "m.keras", "-o", "x.tflite", "--min-agreement", "nan"], "expected a finite number, got 'nan'"),
    (["convert", "m.keras", "-o", "x.tflite", "--mean", "1,inf,3"], "expected a finite number, got 'inf'"),
    (["convert", "m.keras", "-o", "x.tflite", "--quantize", "int4"], "invalid choice: 'int4'"),
    (["convert", "m.keras"], "the following arguments are required: --output/-o"),
    (["train", "--lr", "inf"], "expected a finite number, got 'inf'"),
    (["train", "--lr", "fast"], "expected a number, got 'fast'"),
    (["train", "--epochs", "0"], "expected a positive integer, got '0'"),
    (["train", "--batch-size", "-4"], "expected a positive integer, got '-4'"),
    (["train", "--schedule", "linear"], "invalid choice: 'linear'"),
    (["train", "--option", "zero_init"], "expected KEY=VALUE"),
    (["train", "--option", "depth=3"], "unknown builder option 'depth'"),
    (["qat", "m.keras", "-o", "q.h5"], "the following arguments are required: --dataset"),
    (["evaluate", "m.keras", "--split", "dev"], "invalid choice: 'dev'"),
    (["convert", "m.keras", "-o", "x.tflite", "--quantizer", "aeq", "--recipe", "int4"], "invalid choice: 'int4'"),
    (["demo", "--runs", "0"], "expected a positive integer, got '0'"),
]


@pytest.mark.parametrize("argv,message", PARSE_ERRORS, ids=[" ".join(argv) for argv, _ in PARSE_ERRORS])
def test_bad_values_are_refused_while_parsing(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    _one_error_line(err, f"keras-resnet {argv[0]}", message)
    assert len(err.strip().splitlines()) == 1 and f"(see keras-resnet {argv[0]} --help)" in err, err


# Parsed, then refused by the dataclass (__post_init__ → ConfigError) inside the command: main returns 2.
POST_INIT_ERRORS = [
    (["convert", "m.keras", "-o", "x.tflite", "--min-agreement", "-1"], "--min-agreement must be in [0, 1]; got -1.0"),
    (["convert", "m.keras", "-o", "x.tflite", "--min-agreement", "2"], "--min-agreement must be in [0, 1]; got 2.0"),
    (["convert", "m.keras", "-o", "x.tflite", "--std", "1,0,1"], "--std values must be > 0"),
    (["train", "--qat-epochs", "-1"], "--qat-epochs must be >= 0; got -1"),
    (["train", "--epochs", "2", "--warmup-epochs", "2"], "warm-up epochs must be in [0, epochs); got 2.0"),
    (["train", "--label-smoothing", "1"], "label smoothing must be in [0, 1); got 1.0"),
    (["train", "--momentum", "1"], "momentum in [0, 1)"),
    (["qat", "m.keras", "--dataset", "digits", "-o", "q.h5", "--epochs", "-1"], "epochs must be >= 0; got -1"),
]


@pytest.mark.parametrize("argv,message", POST_INIT_ERRORS, ids=[" ".join(argv) for argv, _ in POST_INIT_ERRORS])
def test_bad_values_caught_by_the_dataclasses_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written; if something is, it lands here
    assert cli.main(argv) == 2
    _one_error_line(capsys.readouterr().err, f"keras-resnet {argv[0]}", message)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_builder_option_value_exits_2(capsys, tmp_path):
    """``--option zero_init=maybe`` parses (any JSON or text value); BlockOptions refuses it when the model is built."""
    out = tmp_path / "run"
    code = cli.main(["train", "--option", "zero_init=maybe", "--limit", "64", "--epochs", "1", "--output", str(out)])
    assert code == 2
    _one_error_line(capsys.readouterr().err, "keras-resnet train", "zero_init must be true or false; got 'maybe'")
    assert not (out / "best.keras").exists()


@pytest.mark.parametrize("call,message", [
    (lambda: Recipe(lr=float("inf")), "lr must be a finite number; got inf"),
    (lambda: Recipe(lr=0), "learning rate must be positive"),
    (lambda: Recipe(epochs=0), "epochs must be a positive integer; got 0"),
    (lambda: Recipe(batch_size=True), "batch size must be a positive integer; got True"),
    (lambda: Recipe(image_size=4), "image size must be at least 8"),
    (lambda: Recipe(schedule="linear"), "schedule must be one of 'step', 'cosine'; got 'linear'"),
    (lambda: TrainRun(strategy="tpu"), "strategy must be one of"),
    (lambda: ConvertSpec(min_agreement=float("nan")), "min agreement must be a finite number; got nan"),
    (lambda: ConvertSpec(min_agreement=1.5), "--min-agreement must be in [0, 1]"),
    (lambda: ConvertSpec(target="npu"), "target must be one of 'cpu', 'gpu', 'edgetpu', "),
    (lambda: ConvertSpec(calibration_samples=0), "calibration samples must be a positive integer"),
    (lambda: ConvertSpec(mean=(0.0, float("nan"), 0.0)), "mean[1] must be a finite number"),
    (lambda: QATSpec(dataset="digits", learning_rate=0.0), "learning rate must be positive"),
    (lambda: EvalSpec(split="dev"), "split must be one of"),
    (lambda: DemoSettings(qat_epochs=-1), "--qat-epochs must be >= 0"),
    (lambda: BlockOptions(zero_init="maybe"), "zero_init must be true or false; got 'maybe'"),
    (lambda: BlockOptions(width=float("nan")), "width must be a finite number"),
    (lambda: BlockOptions(shortcut="D"), "shortcut must be one of 'A', 'B', 'C'; got 'D'"),
])
def test_the_dataclasses_refuse_bad_values(call, message):
    with pytest.raises(errors.ConfigError) as error:
        call()
    assert message in str(error.value)


# ---- errors: only keras_resnet.core.errors.Error becomes one line ---------------------------------------------------


def test_error_classes():
    assert not hasattr(errors, "UserError")
    for cls in (errors.ConfigError, errors.DataError, errors.ModelFileError, errors.UnsafeModelError,
                errors.ValidationError):
        assert issubclass(cls, errors.Error) and issubclass(cls, ValueError)
    for cls in (errors.OutputExistsError, errors.OutputError):
        assert issubclass(cls, errors.Error) and issubclass(cls, OSError)
    assert issubclass(errors.OutputExistsError, FileExistsError)
    assert issubclass(errors.UnsafeModelError, errors.ModelFileError)


def _raising(monkeypatch, error: BaseException) -> None:
    """``keras-resnet models`` raises ``error`` from its handler."""
    def command(args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "models", dataclasses.replace(cli.COMMANDS["models"], run=command))


@pytest.mark.parametrize("error", [errors.ConfigError("bad --thing 3"), errors.OutputExistsError("out exists"),
                                   errors.UnsafeModelError("has a Lambda")], ids=lambda e: type(e).__name__)
def test_an_error_becomes_one_line_and_exit_2(error, monkeypatch, capsys):
    monkeypatch.delenv("KERAS_RESNET_DEBUG", raising=False)
    _raising(monkeypatch, error)
    assert cli.main(["models"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"keras-resnet models: error: {error}\n" and captured.out == ""


def test_debug_shows_the_traceback_of_an_error(monkeypatch):
    monkeypatch.setenv("KERAS_RESNET_DEBUG", "1")
    _raising(monkeypatch, errors.DataError("no such dataset"))
    with pytest.raises(errors.DataError, match="no such dataset"):
        cli.main(["models"])


@pytest.mark.parametrize("error", [ValueError("a bug"), OSError(28, "No space left on device"), KeyError("x"),
                                   TypeError("a bug")], ids=lambda e: type(e).__name__)
def test_anything_else_is_a_traceback(error, monkeypatch):
    monkeypatch.delenv("KERAS_RESNET_DEBUG", raising=False)
    cause = RuntimeError("the cause")
    error.__cause__ = cause
    _raising(monkeypatch, error)
    with pytest.raises(type(error)) as raised:
        cli.main(["models"])
    assert raised.value is error and raised.value.__cause__ is cause
