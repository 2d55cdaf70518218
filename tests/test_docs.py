"""Every Python and shell example in README.md and docs/*.md runs, in order, one workspace per document.

What counts as an example: a fenced block labelled ``python``, ``bash`` or ``sh``. Plain fences are output or
synopses and are not run. A block may be skipped only for a reason this machine cannot meet, stated on the line
before it as ``<!-- docs-test: skip network: why -->`` (downloads, installs from a registry, pretrained weights),
``skip gpu`` / ``skip accelerator`` (a GPU or Edge TPU delegate), or ``skip ci`` (the CI commands themselves).

The examples run as written at toy scale, so that the whole set fits the CI budget: ``--epochs N`` and
``epochs=N`` become 1 (``--warmup-epochs`` 0), ``keras-resnet train`` and ``Recipe(...)`` see 128 training images
(``--limit 128`` / ``limit=128``), and a ``train`` or ``qat`` line without ``--epochs`` gets ``--epochs 1``.
A shell ``for`` loop runs its body for the first value only. ``keras-resnet convert`` lines get ``--min-agreement 0``: a model trained for one epoch on 128 images has nearly
tied scores that int8 rounding flips (measured 0.93 top-1 agreement for README's QAT file, against the 0.95 that
catches real breakage in a trained model), so the toy scale would fail the check for no fault of the example. ``keras-resnet`` and ``resnet-edge`` lines run in this process through their
``main``; a line with an environment prefix (``KERAS_BACKEND=jax ...``) or another program runs in bash. Each
document's workspace holds what its examples name as given: a trained ``model.keras`` (also ``MODEL.keras``), its
int8 ``model.tflite``, ``digit.png``, ``cat.jpg``, ``a.jpg``, ``b.png``, ``photos/``, ``images/``, ``~/flowers``,
``~/data`` (tiny CIFAR-10 batches) and ``cifar-10-python.tar.gz``; Python examples also see ``model`` (a Keras
model), ``x_train``, ``y_train`` (digits) and ``pixels`` (N×H×W×3 images), and ``~`` is the workspace's home.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
from training_helpers import ENV, write_cifar10, write_image_folder

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:^<!-- docs-test: (?P<directive>[^\n]*?) -->\n)?^```(?P<lang>python|bash|sh)\n(?P<body>.*?)^```",
                   re.S | re.M)
SKIPS = ("network", "gpu", "accelerator", "ci")
FMNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")

def blocks(document: str) -> list[tuple[int, str, str, str | None]]:
    """``(line, lang, body, skip reason)`` of each example in ``document``."""
    text = (ROOT / document).read_text(encoding="utf-8")
    found = []
    for m in BLOCK.finditer(text):
        skip = None
        if m["directive"]:
            kind, _, why = m["directive"].removeprefix("skip ").partition(":")
            assert m["directive"].startswith("skip ") and kind.strip() in SKIPS and why.strip(), (
                f"{document}: bad docs-test directive {m['directive']!r}")
            skip = f"{kind.strip()}: {why.strip()}"
        found.append((text[:m.start("lang")].count("\n") + 1, m["lang"], m["body"], skip))
    return found


def toy_scale(text: str) -> str:
    text = re.sub(r"--warmup-epochs \d+(\.\d+)?", "--warmup-epochs 0", text)
    text = re.sub(r"--(qat-)?epochs \d+", lambda m: f"--{m[1] or ''}epochs 1", text)
    text = re.sub(r"\bepochs=\d+", "epochs=1", text)
    return re.sub(r"\bRecipe\(", "Recipe(limit=128, ", text)


def shell_lines(body: str) -> list[str]:
    """The commands of a shell block, continuations joined; ``keras-resnet train`` gets ``--limit 128``. A block
    with a compound command (``for``/``while``/``if``) is one bash script."""
    joined = re.sub(r"\s*\\\n\s*", " ", body)
    joined = re.sub(r"keras-resnet train (?!.*--limit)", "keras-resnet train --limit 128 ", joined)
    joined = re.sub(r"keras-resnet (train|qat) (?!.*--epochs)", r"keras-resnet \1 --epochs 1 ", joined)  # defaults: 30, 2
    joined = re.sub(r"keras-resnet convert (?!.*--min-agreement)", "keras-resnet convert --min-agreement 0 ", joined)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    if any(re.match(r"(for|while|if) ", line) for line in lines):
        # a loop over seeds or models runs its body once at toy scale, as epochs become 1 (training.md's seed loop
        # was 6 trainings, 3 of them identical but for the seed)
        lines = [re.sub(r"^for (\w+) in ([^\s;]+)(?: [^;\n]+)?;", r"for \1 in \2;", line) for line in lines]
        lines = ["\n".join(lines)]
    # the modern bundle warms up for 1 epoch, which needs at least 2
    return [line.replace("--epochs 1 ", "--epochs 2 ") if "--recipe modern" in line else line for line in lines]


@pytest.fixture(scope="session")
def trained() -> dict[str, str]:
    """The digits ResNet-20 of tests/shared_models.py (trained once for all test files) and its int8 .tflite."""
    from shared_models import trained_digits_int8, trained_digits_model

    return {"keras": trained_digits_model(), "tflite": trained_digits_int8()}


def workspace(root: pathlib.Path, trained: dict[str, str]) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    home = root / "home"
    home.mkdir()
    for name in ("model.keras", "MODEL.keras"):  # copyfile: the examples may overwrite them, the cache is read-only
        shutil.copyfile(trained["keras"], root / name)
    for name in ("model.tflite", "MODEL.tflite"):
        shutil.copyfile(trained["tflite"], root / name)
    digits = load_digits().images[:4]
    (root / "photos").mkdir()
    for i, d in enumerate(digits):
        image = Image.fromarray((d * 16).clip(0, 255).astype(np.uint8)).resize((32, 32))
        image.save(root / "photos" / f"{i}.png")
    shutil.copy(root / "photos" / "0.png", root / "digit.png")
    shutil.copy(root / "photos" / "1.png", root / "b.png")
    for name in ("cat.jpg", "a.jpg"):
        Image.open(root / "photos" / "2.png").convert("RGB").save(root / name)
    write_image_folder(root / "images", per_class=6)
    write_image_folder(home / "flowers", per_class=6)
    write_cifar10(home / "data")
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(home / "data" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    if FMNIST.is_dir():
        (home / "fmnist").symlink_to(FMNIST)
        for name in FMNIST.iterdir():
            (root / name.name).symlink_to(name)


def run_shell(line: str, root: pathlib.Path, env: dict) -> None:
    words = shlex.split(line, comments=True)
    assert words, line
    program = words[0]
    if program in ("keras-resnet", "resnet-edge") and "=" not in program:
        if program == "keras-resnet":
            from keras_resnet.cli.main import main
        else:
            from resnet_edge.cli import main
        words = [os.path.expanduser(w) for w in words]  # what bash does with a leading ~
        code = main(words[1:])
        assert code == 0, f"{line!r} exited {code}"
        return
    result = subprocess.run(["bash", "-c", line], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{line!r} exited {result.returncode}:\n{result.stderr[-3000:]}"


@contextlib.contextmanager
def inside(root: pathlib.Path, home: pathlib.Path):
    cwd, old_home = os.getcwd(), os.environ.get("HOME")
    os.chdir(root)
    os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        os.chdir(cwd)
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS)
def test_examples_run(document, trained, tmp_path):
    examples = blocks(document)
    if not examples:
        pytest.skip(f"{document} has no examples")
    workspace(tmp_path, trained)
    home = tmp_path / "home"
    env = {**ENV, "HOME": str(home), "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{ENV['PATH']}"}
    namespace: dict = {}
    ran = skipped = 0
    with inside(tmp_path, home):
        for line, lang, body, skip in examples:
            if skip:
                skipped += 1
                print(f"{document}:{line}: skipped ({skip})")
                continue
            if "fashion-mnist" in body and not FMNIST.is_dir():
                skipped += 1
                print(f"{document}:{line}: skipped (network: Debian's dataset-fashion-mnist is not installed)")
                continue
            code = toy_scale(body)
            started = time.perf_counter()
            if lang == "python":
                if not namespace:
                    namespace.update(python_context())
                try:
                    exec(compile(code, f"{document}:{line}", "exec"), namespace)  # noqa: S102 (our own docs)
                except Exception as error:
                    raise AssertionError(f"{document}:{line}: {type(error).__name__}: {error}") from error
            else:
                for command in shell_lines(code):
                    run_shell(command, tmp_path, env)
            ran += 1
            print(f"{document}:{line}: {time.perf_counter() - started:.1f} s")
    print(f"{document}: {ran} examples ran, {skipped} skipped")


def python_context() -> dict:
    import keras

    from keras_resnet.data import datasets as data

    x, y = data.load("digits", "train")
    model = keras.saving.load_model("model.keras")
    pixels = x[:4] if x.shape[-1] == 3 else np.repeat(x[:4], 3, axis=-1)
    return {"model": model, "x_train": x[:256], "y_train": y[:256], "pixels": pixels}


def test_loops_run_once_at_toy_scale():
    assert shell_lines("for S in 0 1 2; do\n  keras-resnet train --seed $S\ndone\n") == [
        "for S in 0; do\nkeras-resnet train --epochs 1 --limit 128 --seed $S\ndone"]
    assert shell_lines("for f in *.png; do echo $f; done\n") == ["for f in *.png; do echo $f; done"]


def test_directives_and_scaling_are_understood():
    assert toy_scale("keras-resnet train --epochs 30 --qat-epochs 2 --warmup-epochs 1") == (
        "keras-resnet train --epochs 1 --qat-epochs 1 --warmup-epochs 0")
    assert toy_scale("train(Recipe(model='r', epochs=30))") == "train(Recipe(limit=128, model='r', epochs=1))"
    assert shell_lines("a \\\n  b\n# c\n\nd # e\n") == ["a b", "d # e"]
    assert shell_lines("keras-resnet train --model r") == ["keras-resnet train --epochs 1 --limit 128 --model r"]
    assert shell_lines("keras-resnet qat m.keras --epochs 1") == ["keras-resnet qat m.keras --epochs 1"]
    assert shell_lines("keras-resnet convert m.keras -o m.tflite") == ["keras-resnet convert --min-agreement 0 m.keras -o m.tflite"]
    assert shell_lines("for S in 0 1; do\n  echo $S\ndone\n") == ["for S in 0; do\necho $S\ndone"]
    assert shell_lines(toy_scale("keras-resnet train --epochs 30 --recipe modern")) == [
        "keras-resnet train --limit 128 --epochs 2 --recipe modern"]
    for document in DOCUMENTS:
        blocks(document)  # every directive parses
