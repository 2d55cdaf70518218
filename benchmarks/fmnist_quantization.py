"""Fashion-MNIST results, stage c: quantization of stage a's ResNet-20 (float32 / float16 / PTQ int8 .tflite, tfmot and
native QAT int8) through ``keras-resnet qat``, ``convert`` and ``evaluate``; every .tflite also runs in resnet_edge on
the 10,000 test images (per-image agreement with float, batch-1 latency); and its section of docs/results.md.
"""

from __future__ import annotations

import os

import numpy as np
from fmnist_runner import DATASET, Runner, fmnist_test_npz, qat_log, tflite_latency, tflite_predictions
from fmnist_stats import ci, pct


def stage_c(r: Runner) -> None:
    model = os.path.join(r.runs, "resnet20", "best.keras")
    if not os.path.isfile(model) and not r.args.dry_run:
        raise SystemExit(f"stage c needs stage a's model {model}; run --stage a first")
    npz = fmnist_test_npz(r)
    folder = os.path.join(r.runs, "quantization")
    if not r.args.dry_run:
        os.makedirs(folder, exist_ok=True)
    qat = os.path.join(folder, "resnet20-qat.h5")
    if not os.path.isfile(qat):
        r.run("qat", ["qat", model, *r.data_args(), "--epochs", str(r.args.qat_epochs), "--output", qat],
              json_tail=False)
    native = os.path.join(folder, "resnet20-qat-native.keras")
    if not os.path.isfile(native):
        r.run("qat-native", ["qat", model, *r.data_args(), "--engine", "keras", "--epochs", str(r.args.qat_epochs),
                             "--output", native], json_tail=False)
    tfmot_log = qat_log(os.path.join(r.runs, "qat.log"))
    if tfmot_log:
        r.results["qat"] = tfmot_log
    validation = ["--validation-data", npz, "--validation-samples", "10000", *r.data_args(), "--force", "--json"]
    rows = [("float32", model, ["--quantize", "float32"]),
            ("float16", model, ["--quantize", "float16"]),
            ("PTQ int8", model, ["--quantize", "int8", "--calibration-data", DATASET,
                                 "--calibration-samples", "1000"]),
            ("tfmot QAT int8", qat, ["--quantize", "int8"]),
            ("native QAT int8", native, ["--quantize", "int8"])]
    evaluated = r.run("evaluate-float", ["evaluate", model, *r.data_args(), "--split", "test", "--json"])
    table = [{"mode": "Keras float32 (best.keras)", "file": model, "accuracy": evaluated and evaluated["accuracy"],
              "images": evaluated and evaluated["images"], "size_bytes": os.path.getsize(model)
              if os.path.isfile(model) else None}]
    predictions = {}
    if not r.args.dry_run:
        with np.load(npz) as f:
            x_test, y_test = f["x"], f["y"]
    for mode, source, options in rows:
        slug = mode.lower().replace(" ", "-")
        output = os.path.join(folder, f"resnet20-{slug}.tflite")
        report = r.run(f"convert-{slug}", ["convert", source, "--output", output, *options, *validation],
                       json_whole=True)
        result = r.run(f"evaluate-{slug}", ["evaluate", output, *r.data_args(), "--split", "test", "--json"])
        if r.args.dry_run:
            continue
        predictions[mode] = tflite_predictions(output, x_test)
        own = float(np.mean(predictions[mode] == y_test))
        latency = tflite_latency(output)
        table.append({"mode": f"TFLite {mode}", "file": output, "accuracy": result["accuracy"],
                      "images": result["images"], "own_accuracy": own, "size_bytes": report["size_bytes"],
                      "latency_ms": report["latency_ms"], "threads": report["threads"], "latency": latency,
                      "agreement_with_source": report["agreement"], "agreement_samples": report["samples"],
                      "convert_wall_s": report["_wall_s"]})
    if not r.args.dry_run:
        reference = predictions["float32"]
        for row in table[1:]:
            mode = row["mode"].replace("TFLite ", "")
            row["agreement_with_float"] = float(np.mean(predictions[mode] == reference))
        r.results["quantization"] = {"rows": table, "qat_epochs": r.args.qat_epochs, "model": model}
        r.save()


def quantization_section(r: Runner) -> list[str]:
    """docs/results.md: stage c."""
    res = r.results
    out: list[str] = []
    out += ["", "## Quantization (stage c)", ""]
    q = res.get("quantization")
    if q:
        out += [f"ResNet-20 of stage a; QAT: {q['qat_epochs']} epochs of tfmot quantization-aware fine-tuning. "
                "Agreement: top-1 agreement with the float32 TFLite model on the 10,000 test images (that model "
                "agrees with the Keras model on all of them, see convert's report in results.json). Latency: batch "
                "1, resnet_edge (`Classifier.benchmark`: LiteRT, XNNPACK), 2 threads, on the shared CPU: the minimum of 200 runs (least "
                "disturbed by other work) and `keras-resnet convert`'s median of 20.", "",
                "| model | test accuracy | 95% CI | agreement with float | size | latency min / convert's median |",
                "|---|---|---|---|---|---|"]
        for row in q["rows"]:
            agreement = row.get("agreement_with_float")
            latency = (f"{row['latency']['min_ms']:.2f} / {row['latency_ms']:.2f} ms" if row.get("latency")
                       else "–")
            out.append(f"| {row['mode']} | {pct(row['accuracy'])} | {ci(row['accuracy'], row['images'])} | "
                       f"{'–' if agreement is None else f'{100 * agreement:.2f}%'} | "
                       f"{row['size_bytes'] / 1e6:.3f} MB | {latency} |")
        if res.get("qat"):
            qa = res["qat"]
            out += ["", f"The tfmot QAT model in Keras (fake-quantized, before conversion): "
                    f"{pct(qa['qat_keras_accuracy'])} test accuracy after {qa['epochs']:.0f} epochs of fine-tuning "
                    f"({qa['seconds'] / 60:.1f} min; float model {pct(qa['float_accuracy'])})."]
        native = qat_log(os.path.join(r.runs, "qat-native.log"))
        agree = {row["mode"]: row.get("agreement_with_source") for row in q["rows"]}
        out += ["", "Native QAT: `keras-resnet qat --engine keras` (keras_resnet.quant.native_qat: fake-quant layers in keras.ops, "
                "BN folded into the convs), the same number of epochs as tfmot"
                + (f"; in Keras {pct(native['qat_keras_accuracy'])} after {native['seconds'] / 60:.1f} min" if native else "") + ". "
                "Top-1 agreement of each QAT model in Keras with its own .tflite on the 10,000 test images: "
                + ", ".join(f"{mode.replace('TFLite ', '')} {100 * a:.2f}%" for mode, a in agree.items()
                            if a is not None and "QAT" in mode) + ".", "", "Commands:", ""]
        names = [n for n in res.get("commands", {}) if n in ("qat", "qat-native")
                 or n.startswith(("convert-", "evaluate-"))]
        for name in names:
            for rec in res.get("commands", {}).get(name, [])[-1:]:
                out.append(f"    {rec['command']}    # {rec['wall_s']:.0f} s")
    else:
        out.append("Not run yet (`--stage c`, after stage a).")
    return out
