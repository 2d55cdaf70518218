"""The QAT engine dispatcher: ``QATSpec.engine`` picks native Keras 3 QAT or tfmot QAT, and the file it writes.

Both engines are imported on first use only: naming a QAT file imports no Keras.
"""

from __future__ import annotations


def qat_file_name(engine: str) -> str:
    """What ``train --qat-epochs`` and the demo call an engine's QAT model (tf_keras QAT models reload from .h5 only)."""
    return "qat.keras" if engine == "keras" else "qat.h5"


def engine_fine_tune(model_or_path, spec, output_path: str, *, force: bool = False, unsafe: bool = False,
                     verbose: int = 0):
    """``spec.engine``'s QAT fine-tuning: :func:`keras_resnet.quant.native_qat.qat_fine_tune` (``keras``) or
    :func:`keras_resnet.quant.tfmot_qat.qat_fine_tune` (``tfmot``). Returns the engine's
    :class:`~keras_resnet.quant.common.QATResult`."""
    if spec.engine == "tfmot":
        from keras_resnet.quant.tfmot_qat import qat_fine_tune
    else:
        from keras_resnet.quant.native_qat import qat_fine_tune
    return qat_fine_tune(model_or_path, spec, output_path, force=force, unsafe=unsafe, verbose=verbose)
