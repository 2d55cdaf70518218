"""The notebooks in notebooks/ run top to bottom, offline, with small parameters.

Each notebook's first code cell is tagged ``parameters`` (its defaults, sized for a full ~10-minute run
on a laptop CPU). The tests insert a cell right after it that overrides them with tiny values, execute
the notebook in a temporary folder with the ``python3`` kernel of the running interpreter (ipykernel
installed in the same virtual environment, as ``make test`` does), and check the files and printed
results each notebook promises.

Run one notebook with its full defaults (and keep the executed copy)::

    python tests/test_notebooks.py notebooks/01_why_residual.ipynb --workdir /tmp/nb01
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

# name: (parameter overrides, files that must exist afterwards (relative to the working folder),
#        strings that must appear in the notebook's printed output)
CASES: dict[str, tuple[str, list[str], list[str]]] = {
    "01_why_residual.ipynb": (
        "EPOCHS = 1\nDEPTHS = (20,)\nLIMIT = 128\nGRAD_DEPTHS = (20,)\nGRAD_BATCH = 32\n"
        f"FMNIST_RESULTS = {str(ROOT / 'benchmarks' / 'fmnist_gpu_results.json')!r}\n",
        ["runs/01_why_residual/digits.png", "runs/01_why_residual/gradient_norms.png",
         "runs/01_why_residual/degradation.png", "runs/01_why_residual/results.json",
         "runs/01_why_residual/resnet20/best.keras", "runs/01_why_residual/degradation_fmnist.png"],
        ["gradient norms span", "train loss", "val error %", "test accuracy %", "resnet20", "plain20", "highway20",
         "final train error, depth 56 minus depth 20", "plain56"],
    ),
    "02_build_your_own.ipynb": (
        "EPOCHS = 1\nLIMIT = 128\nWEIGHTS_SIZE = 64\n",
        ["runs/02_build_your_own/custom_models.png",
         "runs/02_build_your_own/resnet50_random_weights_tf_dim_ordering_tf_kernels.h5"],
        ["demo_add", "neck_3_conv", "Plain20", "hand_made", "wrn14_2", "resnet20_multiscale", "C5",
         "identical top-5 classes: True", "transfer_weights copied", "is refused"],
    ),
    "03_qat_tflite_device.ipynb": (
        "EPOCHS = 2\nQAT_EPOCHS = 1\nCALIBRATION = 64\nVALIDATION = 64\nRUNS = 5\nPNGS = 4\nMIN_AGREEMENT = 0.0\n",
        ["runs/03_qat_tflite_device/qat.h5", "runs/03_qat_tflite_device/float32.tflite",
         "runs/03_qat_tflite_device/float16.tflite", "runs/03_qat_tflite_device/int8_ptq.tflite",
         "runs/03_qat_tflite_device/int8_qat.tflite", "runs/03_qat_tflite_device/gpu.tflite",
         "runs/03_qat_tflite_device/pngs/digit_000.png", "runs/03_qat_tflite_device/device_predictions.png",
         "runs/03_qat_tflite_device/formats.png", "runs/03_qat_tflite_device/results.json"],
        ["test accuracy: float", "GPU delegate", "int8 QAT", "int8 PTQ", "float16", "median ms", "PNG files right"],
    ),
}
# With deploy/ installed (`make test` installs it) the device runner must be the one used, without TensorFlow.
DEVICE_STRINGS = ["runner: resnet_edge", "without TensorFlow:", "tensorflow imported: False"]


def _kernel_available() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.fail(f"no 'python3' Jupyter kernel for {sys.executable}: pip install ipykernel into this environment")


def load(name: str, overrides: str | None):
    """The notebook, with an ``overrides`` cell inserted after its parameters cell."""
    import nbformat

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    if overrides:
        cell = nbformat.v4.new_code_cell(overrides)
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(index + 1, cell)
    return nb


def execute(nb, workdir: str, timeout: int = 600):
    from nbclient import NotebookClient

    os.makedirs(workdir, exist_ok=True)
    env_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"  # the kernel inherits it: figures render to files, no display needed
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": workdir}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_before
    return nb


def printed(nb) -> str:
    """Everything the notebook printed or displayed as text."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_stored_with_outputs_of_a_full_run():
    """Committed notebooks carry the outputs of `make notebooks` (full parameters): a reader on a code host sees the
    plots and numbers. Every code cell ran, none failed, and no TensorFlow C++ start-up line is stored."""
    import nbformat

    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert set(CASES) <= set(names), f"missing notebooks: {sorted(set(CASES) - set(names))}"
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), f"{name}: first code cell must be tagged 'parameters'"
        for cell in code:
            assert cell.execution_count is not None, f"{name}: a code cell was not executed; run `make notebooks`"
            for output in cell.outputs:
                assert output.output_type != "error", f"{name}: a cell failed ({output.get('ename')})"
                text = "".join(output.get("text", ""))
                assert "I0000 " not in text and "cuInit" not in text, f"{name}: TensorFlow C++ log lines stored"
        assert any(o.output_type == "display_data" for c in code for o in c.outputs), f"{name}: no plot stored"
        assert name in CASES, f"{name} has no test case in tests/test_notebooks.py"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs(name, tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    _kernel_available()
    overrides, files, strings = CASES[name]
    nb = execute(load(name, overrides), str(tmp_path))
    missing = [f for f in files if not (tmp_path / f).is_file()]
    assert not missing, f"{name} did not write {missing}"
    text = printed(nb)
    if name.startswith("03_") and importlib.util.find_spec("resnet_edge") is not None:
        strings = [*strings, *DEVICE_STRINGS]
    absent = [s for s in strings if s not in text]
    assert not absent, f"{name} never printed {absent}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute a notebook (full defaults unless --small).")
    parser.add_argument("notebook")
    parser.add_argument("--workdir", default=None, help="working folder (default: a new temporary one)")
    parser.add_argument("--small", action="store_true", help="use the tests' small parameters")
    parser.add_argument("--save", default=None, help="write the executed notebook here")
    args = parser.parse_args(argv)
    import tempfile

    import nbformat

    name = pathlib.Path(args.notebook).name
    workdir = args.workdir or tempfile.mkdtemp(prefix="notebook-")
    start = time.perf_counter()
    nb = execute(load(name, CASES[name][0] if args.small else None), workdir, timeout=3600)
    print(printed(nb))
    print(f"{name}: executed in {time.perf_counter() - start:.0f} s in {workdir}")
    if args.save:
        nbformat.write(nb, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
