"""`keras-resnet COMMAND ...`: a thin dispatcher that imports only the module a command needs.

Each command is a function ``(argv: list[str], prog: str) -> int`` named as ``module:function``. User mistakes raise
:class:`~keras_resnet.errors.UserError` (or ``ValueError`` from the builders) and end as one line on
stderr with exit code 2; set ``KERAS_RESNET_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys

from keras_resnet.errors import UserError

# name: ("module:function", one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("keras_resnet.build:models_cli", "list the named models and their parameter counts"),
    "summary": ("keras_resnet.build:summary_cli", "build a model by name and print its summary"),
    "train": ("keras_resnet.train:cli", "train a model with the paper's recipe"),
    "evaluate": ("keras_resnet.evaluate:cli", "evaluate a .keras or .tflite model on a dataset"),
    "qat": ("keras_resnet.quantize:cli", "quantization-aware fine-tuning of a trained model"),
    "convert": ("keras_resnet.convert:cli", "convert a model to a validated .tflite file"),
    "demo": ("keras_resnet.demo:cli", "train, quantize, convert and benchmark ResNet-20 on bundled data"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: keras-resnet COMMAND [options]   (keras-resnet COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version

        print(version("keras-resnets"))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"keras-resnet: error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    prog = f"keras-resnet {name}"
    try:
        module_name, function = COMMANDS[name][0].split(":")
        return int(getattr(importlib.import_module(module_name), function)(rest, prog) or 0)
    except (UserError, ValueError, OSError) as error:
        if os.environ.get("KERAS_RESNET_DEBUG"):
            raise
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
