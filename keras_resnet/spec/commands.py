"""The options of the smaller commands, one dataclass each: :class:`QATSpec` (``keras-resnet qat``),
:class:`EvalSpec` (``evaluate``), :class:`DemoSettings` (``demo``) and :class:`ImportSpec` (``import``,
:mod:`keras_resnet.io.hub`).
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_resnet.core.errors import ConfigError
from keras_resnet.spec.fields import (
    DATASET_HELP,
    DEFAULT_QAT_ENGINE,
    JIT_MODES,
    QAT_ENGINES,
    check_agreement,
    check_finite,
    check_positive_int,
    finite,
    opt,
    positive_int,
    shared,
)
from keras_resnet.spec.specs import check_choice

SPLITS = ("train", "val", "test")


@dataclass
class QATSpec:
    """Quantization-aware fine-tuning of a trained model (``keras-resnet qat``)."""

    dataset: str = shared("dataset", required=True, help="dataset to fine-tune on: " + DATASET_HELP)
    data_dir: str | None = shared("data_dir")
    epochs: int = opt(2, "fine-tuning epochs", parse=int)
    batch_size: int = opt(64, "batch size", parse=positive_int)
    learning_rate: float = opt(1e-3, "SGD learning rate", parse=finite)
    engine: str = shared("qat_engine", DEFAULT_QAT_ENGINE)
    jit: str = shared("jit", "auto")

    def __post_init__(self) -> None:
        check_choice("engine", self.engine, QAT_ENGINES)
        check_choice("--jit", self.jit, JIT_MODES)
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0; got {self.epochs!r}")
        check_positive_int("qat", batch_size=self.batch_size)
        check_finite("qat", learning_rate=self.learning_rate)
        if not self.learning_rate > 0:
            raise ConfigError(f"learning rate must be positive; got {self.learning_rate}")


@dataclass
class EvalSpec:
    """What to evaluate a model on (``keras-resnet evaluate``)."""

    dataset: str = shared("dataset", "digits")
    data_dir: str | None = shared("data_dir")
    split: str = opt("test", "dataset split", choices=SPLITS)
    batch_size: int = opt(128, "batch size", parse=positive_int)
    limit: int | None = opt(None, "evaluate the first N images only", parse=positive_int)

    def __post_init__(self) -> None:
        check_choice("split", self.split, SPLITS)
        check_positive_int("evaluate", batch_size=self.batch_size, limit=self.limit)


@dataclass
class DemoSettings:
    """``keras-resnet demo``: train, QAT, four TFLite formats and the device runner, on bundled data."""

    model: str = opt("resnet20", "a name from `keras-resnet models`")
    dataset: str = shared("dataset", "digits")
    data_dir: str | None = shared("data_dir")
    epochs: int = opt(12, "float training epochs (cosine schedule, label smoothing 0.1)", parse=positive_int)
    qat_epochs: int = opt(1, "QAT fine-tuning epochs", parse=int)
    batch_size: int = opt(64, "batch size", parse=positive_int)
    output: str = shared("output", "demo-output", help="folder for models, table and plots")
    threads: int = opt(2, "interpreter threads", parse=positive_int)
    runs: int = opt(50, "timed runs per latency figure", parse=positive_int)
    min_agreement: float | None = shared("min_agreement", help="passed to every conversion (lower it only for barely "
                                                               "trained models, e.g. --epochs 1 smoke runs)")

    def __post_init__(self) -> None:
        check_agreement(self.min_agreement)
        check_positive_int("demo", epochs=self.epochs, batch_size=self.batch_size, threads=self.threads,
                            runs=self.runs)
        if not isinstance(self.qat_epochs, int) or self.qat_epochs < 0:
            raise ConfigError(f"--qat-epochs must be >= 0; got {self.qat_epochs!r}")


@dataclass
class ImportSpec:
    """``keras-resnet import``: pretrained timm / torchvision weights into a Keras model (:mod:`keras_resnet.io.hub`)."""

    source: str = opt(None, "SOURCE:ARCH[.TAG]: timm:resnet50d, timm:resnet50.a1_in1k, torchvision:resnext50_32x4d, "
                            "... (see docs/pretrained.md)", positional=True)
    weights: str | None = opt(None, "the weights file (.safetensors, or .pth/.bin from torch.save); default: download "
                                    "it with the source's hub client (needs the network)", metavar="FILE")
    output: str = shared("output", None, required=True, help="the .keras model to write (the preprocessing goes "
                                                              "next to it, OUTPUT minus .keras + .preprocessing.json)")
    force: bool = shared("force", False)
    logits: bool = opt(False, "end the model on logits (no softmax), as the PyTorch model does")

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or ":" not in self.source:
            raise ConfigError(f"expected SOURCE:ARCH, e.g. timm:resnet50d or torchvision:resnet50; got {self.source!r}")

    @property
    def classifier_activation(self) -> str | None:
        return None if self.logits else "softmax"
