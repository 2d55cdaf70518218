"""``keras-resnet train --qat-epochs N``: a training run, then quantization-aware fine-tuning of its best.keras.

:func:`train_then_qat` runs :func:`keras_resnet.train.loop.run_training` and then :func:`qat_after_training`, which
fine-tunes a QAT copy of ``OUTPUT/best.keras`` with ``--qat-engine`` into ``OUTPUT/qat.keras`` (keras) or
``OUTPUT/qat.h5`` (tfmot). An existing QAT file is kept (a rerun of a finished run does not fine-tune again).
It lives here, not in :mod:`keras_resnet.train`, because QAT is the layer above training.
"""

from __future__ import annotations

import os

from keras_resnet.quant.engine import engine_fine_tune, qat_file_name
from keras_resnet.spec.commands import QATSpec
from keras_resnet.spec.recipe import Recipe, TrainRun
from keras_resnet.train.loop import run_output, run_training


def qat_after_training(recipe: Recipe, run: TrainRun) -> dict:
    """Fine-tune a QAT copy of the run's ``best.keras`` for ``run.qat_epochs`` epochs on the recipe's dataset;
    returns ``summary["qat"]``: the QAT file and engine (and, when it fine-tuned, its accuracy and time)."""
    output = run_output(recipe, run)
    path = os.path.join(output, qat_file_name(run.qat_engine))
    if os.path.exists(path):
        print(f"QAT: keeping {path} (delete it to fine-tune again)", flush=True)
        return {"path": path, "engine": run.qat_engine}
    print(f"QAT: fine-tuning a quantization-aware copy of best.keras for {run.qat_epochs} epochs "
          f"({run.qat_engine} engine)", flush=True)
    spec = QATSpec(dataset=recipe.dataset, data_dir=recipe.data_dir, epochs=run.qat_epochs, engine=run.qat_engine,
                   jit=run.jit)
    result = engine_fine_tune(os.path.join(output, "best.keras"), spec, path, verbose=2 if run.verbose else 0)
    print(f"QAT: test accuracy {result.accuracy:.2%} (float {result.float_accuracy:.2%}{result.jit_text()}); wrote "
          f"{path}", flush=True)
    return {"path": path, "engine": run.qat_engine, "accuracy": result.accuracy,
            "float_accuracy": result.float_accuracy, "epochs": result.epochs, "seconds": round(result.seconds, 1),
            "jit": result.jit}


def train_then_qat(recipe: Recipe, run: TrainRun) -> dict:
    """``keras-resnet train``: the run's summary, with ``summary["qat"]`` when ``run.qat_epochs`` asks for QAT."""
    summary = run_training(recipe, run)
    if run.qat_epochs:
        summary["qat"] = qat_after_training(recipe, run)
    return summary
