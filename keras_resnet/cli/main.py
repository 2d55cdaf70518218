"""``keras-resnet COMMAND ...``: parsers generated from the option dataclasses (:mod:`keras_resnet.spec.fields`),
one handler per command (``keras_resnet/cli/<command>.py``).

Parsing, ``--help`` and ``keras-resnet models`` need neither Keras nor TensorFlow, so they answer at once: each
handler turns the arguments into its spec (checked before anything heavy loads), then imports TensorFlow quietly
(:func:`keras_resnet.core.console.start_tensorflow`) and calls one library function.
Expected problems (:class:`keras_resnet.core.errors.Error`: bad arguments, files, data) end as one ``error:`` line and
exit code 2; anything else is a bug and ends as a traceback. ``KERAS_RESNET_DEBUG=1`` shows tracebacks for
every error and keeps TensorFlow's logs; ``keras-resnet --verbose COMMAND`` keeps the logs only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from keras_resnet.cli import check, convert, demo, evaluate, import_, models, qat, summary, train
from keras_resnet.core import console
from keras_resnet.core.errors import Error
from keras_resnet.spec.commands import DemoSettings, EvalSpec, ImportSpec, QATSpec
from keras_resnet.spec.conversion import CheckSpec, ConvertSpec
from keras_resnet.spec.fields import DEFAULT_QAT_ENGINE, SHARED, add_arguments
from keras_resnet.spec.recipe import Recipe, TrainRun
from keras_resnet.spec.specs import VARIANTS

Arguments = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace], int]


def _flag(parser: argparse.ArgumentParser, name: str, **changes) -> None:
    """Add a :data:`~keras_resnet.spec.fields.SHARED` flag that is not a dataclass field of the command."""
    flag = SHARED[name]
    names = ["--" + name.replace("_", "-")] + ([flag.short] if flag.short else [])
    kwargs = {"help": changes.pop("help", flag.help), **changes}
    if "required" not in kwargs and "default" not in kwargs:
        kwargs["action"] = "store_true"
    parser.add_argument(*names, dest=name, **kwargs)


def _models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", action="store_true", help="build each model to count its parameters (slow)")


def _summary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a name from `keras-resnet models`, e.g. resnet20 or resnet50v2")
    p.add_argument("--classes", type=int, help="number of classes (default: 10 CIFAR, 1000 ImageNet)")
    p.add_argument("--input-size", type=int, help="input height and width")
    p.add_argument("--variant", default="v1", choices=list(VARIANTS))


def _train_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p, Recipe)
    add_arguments(p, TrainRun)


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a model file: .keras or .tflite")
    add_arguments(p, EvalSpec)
    _flag(p, "json")


def _qat_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="trained Keras 3 model (.keras)")
    add_arguments(p, QATSpec)
    _flag(p, "output", required=True, help="QAT model to write (.h5 for --engine tfmot, .keras for --engine keras)")
    _flag(p, "force")
    _flag(p, "unsafe")


def _convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a Keras 3 .keras model, or a QAT model from `keras-resnet qat`")
    _flag(p, "output", required=True, help="the .tflite file to write")
    add_arguments(p, ConvertSpec)
    _flag(p, "force")
    _flag(p, "unsafe")
    _flag(p, "json")


def _import_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p, ImportSpec)


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .tflite file")
    add_arguments(p, CheckSpec)
    _flag(p, "json")


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p, DemoSettings)


TRAIN_EPILOG = """examples:
  keras-resnet train --model resnet20 --dataset digits --epochs 30 --batch-size 128 --output runs/r20
  keras-resnet train --model resnet20 --dataset fashion-mnist --epochs 30 --schedule cosine
  keras-resnet train --model resnet110 --dataset cifar10 --data-dir ~/data --epochs 164 --warmup-epochs 1
  keras-resnet train --model resnet50 --dataset folder:~/flowers --image-size 96 --schedule cosine
  keras-resnet train ... --strategy mirrored          # all GPUs of this machine, --batch-size is global
  TF_CONFIG='{...}' keras-resnet train ... --strategy multiworker   # one process per machine
  KERAS_BACKEND=jax keras-resnet train ...          # or torch: pip install 'keras-resnets[jax]' / [torch]

The output folder receives best.keras, last.keras, history.csv, summary.json, curves.png, logs/ (TensorBoard)
and backup/. Run the same command again after an interruption to resume after the last completed epoch.
See docs/training.md."""


@dataclass(frozen=True)
class Command:
    help: str
    arguments: Arguments
    run: Handler  # builds its spec from the parsed arguments, then loads TensorFlow only if it needs it
    description: str = ""
    epilog: str = ""


COMMANDS: dict[str, Command] = {
    "models": Command("list the named models (and, with --params, their parameter counts)", _models_arguments,
                      models.models_command),
    "summary": Command("build a model by name and print its summary", _summary_arguments,
                       summary.summary_command),
    "train": Command("train a model with the paper's recipe", _train_arguments, train.train_command,
                     description="Train a ResNet with He et al.'s recipe (SGD, momentum 0.9, lr 0.1 per 128 images, "
                                 "weight decay 1e-4, lr ÷10 at 50% and 75% of training, pad-crop-flip augmentation).",
                     epilog=TRAIN_EPILOG),
    "evaluate": Command("evaluate a .keras or .tflite model on a dataset", _evaluate_arguments,
                        evaluate.evaluate_command,
                        description="Evaluate a trained model on a dataset split: top-1, top-5 (more than 5 "
                                    "classes), loss and per-class accuracy. .tflite files run in resnet-edge, the "
                                    "device runner."),
    "qat": Command("quantization-aware fine-tuning of a trained model", _qat_arguments,
                   qat.qat_command,
                   description="Quantization-aware fine-tuning: quantize a trained .keras model natively in Keras 3 "
                               "(--engine keras, any backend, saves .keras) or with tfmot's 8-bit scheme (on a "
                               "tf_keras twin, TensorFlow only; --engine tfmot saves .h5), fine-tune it and save it. "
                               f"Default engine: {DEFAULT_QAT_ENGINE} (also for `train --qat-epochs` and the demo)."),
    "convert": Command("convert a model to a validated .tflite file", _convert_arguments,
                       convert.convert_command,
                       description="Convert a .keras model (float or QAT) to a .tflite file, validated in "
                                   "resnet-edge (the device runner) against the Keras model before it is written."),
    "import": Command("import timm / torchvision weights into a .keras model", _import_arguments,
                      import_.import_command,
                      description="Build the keras_resnet twin of a timm or torchvision ResNet and load its weights "
                                  "from a .safetensors or .pth file (read without torch and without running code "
                                  "from it). The pixel normalisation goes inside the model; input size, crop and "
                                  "interpolation go to OUTPUT.preprocessing.json. See docs/pretrained.md.",
                      epilog="examples:\n  keras-resnet import timm:resnet50d --weights model.safetensors "
                             "--output resnet50d.keras\n  keras-resnet import torchvision:resnet50 --weights "
                             "resnet50-11ad3fa6.pth -o resnet50.keras"),
    "check": Command("which ops of a .tflite file a target (cpu, gpu, edgetpu) refuses or runs elsewhere",
                     _check_arguments, check.check_command,
                     description="Check a .tflite file against a target's deployment contract from the file alone "
                                 "(resnet-edge check, no TensorFlow): per op, what fails or falls back; for edgetpu "
                                 "the op/version table of edgetpu_compiler 16.0, 8-bit I/O, static batch-1 shapes "
                                 "and the ~8 MB parameter cache, and the compiler's own log when it is on PATH."),
    "demo": Command("train, quantize, convert and benchmark ResNet-20 on bundled data", _demo_arguments,
                    demo.demo_command,
                    description="The whole story offline: train, QAT, four TFLite formats, the device runner's "
                                "accuracy and latency table and plots."),
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one ``error:`` line (the default prints the whole usage block first)."""

    def error(self, message: str) -> None:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parser_for(name: str) -> argparse.ArgumentParser:
    command = COMMANDS[name]
    parser = _Parser(prog=f"keras-resnet {name}", description=command.description or command.help,
                     epilog=command.epilog or None, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.arguments(parser)
    return parser


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: keras-resnet [--verbose] COMMAND [options]   (keras-resnet COMMAND --help for details)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {command.help}" for name, command in COMMANDS.items()]
    lines += ["", "--verbose keeps TensorFlow's own log lines; KERAS_RESNET_DEBUG=1 also shows tracebacks."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(argv) and argv[0] == "--verbose"
    if verbose:
        argv = argv[1:]
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from keras_resnet.core.version import VERSION

        print(VERSION)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"keras-resnet: error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    prog = f"keras-resnet {name}"
    command = COMMANDS[name]
    args = parser_for(name).parse_args(rest)  # exits 0 for --help, 2 with one "error:" line for bad arguments
    logs = verbose or console.debug()
    args.verbose_logs = logs
    if not logs:
        console.quiet()
    try:
        return int(command.run(args) or 0)
    except Error as error:
        if console.debug():
            raise
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `keras-resnet models | head`: the reader left; nothing more to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the interpreter's exit flush must not fail again)
        return 0


__all__ = ["COMMANDS", "Command", "main", "parser_for"]

if __name__ == "__main__":
    sys.exit(main())
