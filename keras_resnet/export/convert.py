"""Convert a Keras 3 model (or a tf_keras QAT model) to a validated ``.tflite`` file: the whole job.

``convert()`` = conversion (float32, float16, dynamic-range or full-integer int8) + metadata + validation:
the finished file (metadata included) runs in :mod:`resnet_edge`, the code a device runs, next to the Keras
model on held-out images, and nothing is written when their top-1 agreement falls below ``min_agreement``.
What to produce is a :class:`~keras_resnet.spec.conversion.ConvertSpec`; its target (``cpu``, ``gpu``, ``edgetpu``)
and quantizer are resolved once, up front, into a :class:`~keras_resnet.export.targets.TargetPlan` that every step
reads. The steps are modules of their own: :mod:`~keras_resnet.export.trace` (the TFLite converter),
:mod:`~keras_resnet.export.ops` (what the file holds), :mod:`~keras_resnet.export.metadata`,
:mod:`~keras_resnet.export.validate` (resnet-edge against Keras), :mod:`~keras_resnet.export.aeq`
(ai-edge-quantizer instead of the converter's quantization), :mod:`~keras_resnet.export.micro` (target ``mcu``: the
file in TensorFlow Lite Micro, its arena and budgets; C++ sources by :mod:`~keras_resnet.export.micro_sources`).
Outputs are written atomically and never overwrite without ``force``.
"""

from __future__ import annotations

import dataclasses
import time

from resnet_edge.choices import ETHOS_U_TARGETS

from keras_resnet.core.errors import ValidationError
from keras_resnet.export import aeq, ethos, micro
from keras_resnet.export.job import Job, Report, load_source, open_output, prepare_job
from keras_resnet.export.metadata import embed_metadata, policy_text
from keras_resnet.export.micro_sources import check_c_source, write_c_sources
from keras_resnet.export.ops import gpu_report, op_summary
from keras_resnet.export.targets import resolve_target
from keras_resnet.export.trace import convert_model
from keras_resnet.export.validate import edgetpu_gate, write_validated
from keras_resnet.spec.conversion import ConvertSpec


def convert(model_or_path, output: str, spec: ConvertSpec | None = None, *, force: bool = False,
            unsafe: bool = False, **fields) -> Report:
    """Convert, embed metadata, validate in resnet-edge and write ``output`` atomically; returns the :class:`Report`.

    ``spec`` (or its fields as keywords, e.g. ``quantization="int8", calibration_data="digits"``) says what to
    produce. Raises a :class:`~keras_resnet.core.errors.Error` (nothing written) for bad arguments, files or data, and
    :class:`~keras_resnet.core.errors.ValidationError` when the top-1 agreement of the finished file with the Keras
    model on the validation images falls below ``min_agreement``. ``quantizer="aeq"`` quantizes with
    ai-edge-quantizer (:func:`keras_resnet.export.aeq.convert_aeq`) and returns its
    :class:`~keras_resnet.export.aeq.AEQReport`.
    """
    spec = dataclasses.replace(spec or ConvertSpec(), **fields)
    if spec.quantizer == "aeq":
        aeq.preflight(spec, force=force)
    if spec.target == "mcu":  # before any slow work: TFLM is installed, the C sources may be written
        micro.tflm()
        if spec.c_source is not None:
            check_c_source(spec.c_source, force=force)
    if spec.target in ETHOS_U_TARGETS:  # before any slow work: Vela's compiled file may be written beside it
        ethos.check_vela_output(output, force=force)
    folder = open_output(output, force=force)
    model, path = load_source(model_or_path, unsafe=unsafe)
    plan = resolve_target(spec, model)
    job = prepare_job(model, path, folder, spec, plan)
    if plan.recipe is not None:
        return aeq.convert_aeq(job, output, spec, force=force)
    return _convert(job, output, spec, force=force)


def _convert(job: Job, output: str, spec: ConvertSpec, *, force: bool) -> Report:
    """The TFLite converter's quantization of ``job.plan``, then the target's checks, metadata and validation."""
    plan = job.plan
    start = time.perf_counter()
    content = convert_model(job.model, quantization=plan.quantization, io_type=plan.io_type, batch=plan.batch,
                            calibration=job.calibration, subsample=plan.subsample, pool=plan.pool,
                            temp_dir=job.folder)  # next to the output, not in a /tmp that may be small or shared
    seconds = time.perf_counter() - start
    counts, floating = op_summary(content)
    if (plan.target == "edgetpu" or plan.target in ETHOS_U_TARGETS) and floating:
        raise ValidationError(f"not fully integer: {len(floating)} ops would stay float on the Edge TPU "
                              f"({', '.join(floating[:8])}); nothing written")
    gpu = gpu_report(content) if plan.target == "gpu" else []
    tflm = npu = None
    if plan.target in ETHOS_U_TARGETS:  # Vela (or its table): every op on the NPU unless --allow-cpu-fallback
        content, npu = ethos.finish(content, job.metadata(spec, plan.quantization), plan.target,
                                    allow_cpu_fallback=spec.allow_cpu_fallback, output=output)
        contract = []
    elif plan.target == "mcu":  # TensorFlow Lite Micro: arena, 0 LSB, budgets; the metadata records arena and flash
        content, tflm, contract = micro.finish(content, job.metadata(spec, plan.quantization), job.prepared, spec,
                                               floating)
    else:
        content = embed_metadata(content, job.metadata(spec, plan.quantization))
        contract = edgetpu_gate(content) if plan.target == "edgetpu" else []

    result, latency = write_validated(content, output, job, threads=spec.threads, force=force)
    if npu is not None:
        ethos.write_compiled(npu, output, force=force)
    sources = [] if spec.c_source is None else write_c_sources(
        spec.c_source, content, source=output, resolver=tflm.resolver, arena_bytes=tflm.arena_bytes, force=force)
    return Report(**job.report_fields(output, content, result, latency, spec.threads, seconds),
                  quantization=plan.quantization, target=plan.target, io_type=plan.io_type, float_ops=floating,
                  gpu_unsupported=gpu, ops=counts, contract=contract, resize=policy_text(job.policy),
                  ethos_u=npu.as_dict() if npu else {}, npu_lines=npu.lines() if npu else [],
                  arena_bytes=tflm and tflm.arena_bytes, micro=tflm.as_dict() if tflm else {}, c_sources=sources)
