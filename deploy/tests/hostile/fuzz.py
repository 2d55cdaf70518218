"""A fuzz generator and runner for hostile ``.tflite`` files (issue 10).

``variants()`` derives 150+ deterministic variants from the test fixtures: random bit flips and truncations, and
mutations aimed at the structure the runtime trusts (tensor shapes, types and buffer indices, operator codes and
versions, quantization parameters, subgraph inputs and outputs) and at the metadata (JSON types, nesting, values).
``run()`` feeds each to the real command line (``resnet-edge classify --json`` on one image, plus ``info --json``
for metadata variants) in driver processes under an address-space cap, and counts the outcomes:

- ``error``: a clean refusal (exit 1 or 2, ``resnet-edge: error:`` lines only);
- ``ran``: exit 0 (the mutation did not matter, or the model still runs);
- ``traceback``: an exception escaped the command (a bug);
- ``signal``: the driver process died (the model crashed us despite the guard);
- ``hang``: one variant took longer than the per-variant limit;
- ``bad_json``: ``--json`` printed something strict JSON parsers reject (NaN, Infinity).

As a script: ``python deploy/tests/hostile/fuzz.py [--workers 2] [--keep DIR]`` prints the counts and the
non-clean cases. TensorFlow-free: the flatbuffer is edited in place with resnet_edge's own reader.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(DEPLOY, "tests", "fixtures")
SOURCES = ("float32.tflite", "int8.tflite", "dynamic.tflite")
SEED = 10
DRIVER_CAP = 2 << 30  # the driver's address space beyond what it has mapped after its imports
VARIANT_LIMIT_S = 90.0  # wall time per variant before it counts as a hang
GUARD_TIMEOUT_S = 30.0  # the guard child's timeout inside the driver (a caught hang is a clean error)

if DEPLOY not in sys.path:
    sys.path.insert(0, DEPLOY)


# ---- the flatbuffer: where the runtime's trusted fields are -------------------------------------------------------


@dataclass
class Layout:
    """Byte positions of fields in one TFLite file (absent fields are left out)."""

    shapes: list[tuple[int, int, bool]] = field(default_factory=list)  # (vector start, length, constant)
    types: list[int] = field(default_factory=list)
    buffers: list[int] = field(default_factory=list)  # tensor.buffer fields
    scales: list[tuple[int, int]] = field(default_factory=list)
    zero_points: list[tuple[int, int]] = field(default_factory=list)
    quant_dims: list[int] = field(default_factory=list)
    opcode_index: list[int] = field(default_factory=list)
    builtin: list[int] = field(default_factory=list)  # int32 OperatorCode.builtin_code
    deprecated: list[int] = field(default_factory=list)  # int8
    versions: list[int] = field(default_factory=list)
    op_tensors: list[tuple[int, int]] = field(default_factory=list)
    io: list[tuple[int, int]] = field(default_factory=list)  # subgraph inputs/outputs vectors
    buffer_lengths: list[int] = field(default_factory=list)  # positions of Buffer.data vector lengths
    metadata_data: int | None = None  # position of the keras_resnet Buffer.data field (a uoffset)
    n_buffers: int = 0
    n_opcodes: int = 0


def layout(data: bytes) -> Layout:
    from resnet_edge.metadata import NAME, _Reader, _root

    r = _Reader(data)
    model = _root(r)
    out = Layout()
    buffers = r.tables(model, 4, "buffers")
    out.n_buffers = len(buffers)
    const = set()
    for i, b in enumerate(buffers):
        start, n = r.vector(b, 0, 1, "buffer data")
        if n:
            const.add(i)
            out.buffer_lengths.append(start - 4)
    opcodes = r.tables(model, 1, "operator_codes")
    out.n_opcodes = len(opcodes)
    for oc in opcodes:
        for fid, target in ((0, out.deprecated), (2, out.versions), (3, out.builtin)):
            pos = r.field(oc, fid)
            if pos is not None:
                target.append(pos)
    for sg in r.tables(model, 2, "subgraphs"):
        for t in r.tables(sg, 0, "tensors"):
            start, n = r.vector(t, 0, 4, "shape")
            buffer_pos = r.field(t, 2)
            index = r.u32(buffer_pos) if buffer_pos is not None else 0
            if n:
                out.shapes.append((start, n, index in const))
            for fid, target in ((1, out.types), (2, out.buffers)):
                pos = r.field(t, fid)
                if pos is not None:
                    target.append(pos)
            q = r.field(t, 4)
            if q is not None:
                qt = r.table(r.deref(q), "quantization")
                for fid, size, target in ((2, 4, out.scales), (3, 8, out.zero_points)):
                    start, n = r.vector(qt, fid, size, "quantization")
                    if n:
                        target.append((start, n))
                pos = r.field(qt, 6)
                if pos is not None:
                    out.quant_dims.append(pos)
        for fid in (1, 2):
            start, n = r.vector(sg, fid, 4, "io")
            if n:
                out.io.append((start, n))
        for op in r.tables(sg, 3, "operators"):
            pos = r.field(op, 0)
            if pos is not None:
                out.opcode_index.append(pos)
            for fid in (1, 2):
                start, n = r.vector(op, fid, 4, "op tensors")
                if n:
                    out.op_tensors.append((start, n))
    for meta in r.tables(model, 6, "metadata"):
        if r.bytes_(meta, 0, "name") == NAME.encode():
            buffer = buffers[r.scalar(meta, 1, "u32")]
            out.metadata_data = r.field(buffer, 0)
    return out


def _put(data: bytearray, pos: int, fmt: str, value) -> None:
    struct.pack_into(fmt, data, pos, value)


def with_metadata(data: bytes, payload: bytes) -> bytes:
    """``data`` with the keras_resnet metadata buffer replaced by ``payload`` (a new vector appended at the end;
    the buffer's data field is pointed at it: flatbuffer offsets are forward and unsigned)."""
    pos = layout(data).metadata_data
    assert pos is not None, "the source has no keras_resnet metadata"
    out = bytearray(data) + b"\0" * (-len(data) % 4)
    vector = len(out)
    out += struct.pack("<I", len(payload)) + payload + b"\0" * (-len(payload) % 4)
    _put(out, pos, "<I", vector - pos)
    return bytes(out)


# ---- the variants -------------------------------------------------------------------------------------------------

BIG = (0, -1, -2, 1 << 10, 1 << 16, 1 << 20, 1 << 24, (1 << 31) - 1)
TYPES = (1, 2, 4, 5, 6, 9, 10, 11, 13, 14, 17, 19, 20, 21, 127, 255)


def _metadata_payloads() -> Iterator[tuple[str, bytes]]:
    good = {"schema": "keras_resnet.metadata/1", "model": "fuzz", "labels": [str(i) for i in range(10)],
            "input": {"height": 32, "width": 32, "channels": 3, "mean": [120.0, 115.0, 100.0],
                      "std": [60.0, 60.0, 60.0], "resize": "stretch"}}

    def edit(**changes) -> bytes:
        meta = json.loads(json.dumps(good))
        for key, value in changes.items():
            if key.startswith("input_"):
                meta["input"][key[6:]] = value
            else:
                meta[key] = value
        return json.dumps(meta, allow_nan=True).encode()

    yield "json-array", b"[]"
    yield "json-list", b"[1, 2, 3]"
    yield "json-string", b'"keras_resnet"'
    yield "json-number", b"3"
    yield "json-null", b"null"
    yield "json-truncated", edit()[:40]
    yield "json-not-utf8", b'{"model": "\xff\xfe"}'
    yield "json-empty", b""
    yield "nested-list-200000", b"[" * 200_000 + b"]" * 200_000
    yield "nested-dict-100000", b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    yield "nested-input-65", json.dumps({"input": json.loads("[" * 64 + "]" * 64)}).encode()
    yield "nested-63-ok", json.dumps({"labels": json.loads("[" * 62 + "]" * 62)}).encode()
    yield "input-list", edit(input=[1, 2])
    yield "input-string", edit(input="RGB")
    yield "mean-string", edit(input_mean="a")
    yield "mean-dict", edit(input_mean={"r": 1})
    yield "mean-nan", edit(input_mean=[math.nan] * 3)
    yield "mean-infinity", edit(input_mean=[math.inf, 0, 0])
    yield "mean-1e999", edit()[:-2].replace(b'"mean": [120.0', b'"mean": [1e999') + b"}}"
    yield "mean-huge-int", edit()[:-2].replace(b'"mean": [120.0', b'"mean": [' + b"9" * 400) + b"}}"
    yield "mean-wrong-count", edit(input_mean=[1.0, 2.0])
    yield "std-zero", edit(input_std=[0, 1, 1])
    yield "std-tiny", edit(input_std=[1e-300] * 3)
    yield "std-negative", edit(input_std=-1)
    yield "std-bool", edit(input_std=[True, True, True])
    yield "resize-number", edit(input_resize=5)
    yield "resize-unknown", edit(input_resize="crop-everything")
    yield "labels-dict", edit(labels={"0": "a"})
    yield "labels-wrong-count", edit(labels=["a", "b"])
    yield "labels-nested", edit(labels=[[["x"]]] * 10)


def variants(seed: int = SEED) -> Iterator[tuple[str, bytes]]:
    """``(name, file content)`` of every variant, deterministic for ``seed``."""
    rng = random.Random(seed)
    for source in SOURCES:
        data = open(os.path.join(FIXTURES, source), "rb").read()
        lay = layout(data)
        tag = source.split(".")[0]
        n = len(data)
        for k, bits in enumerate((1, 1, 1, 1, 1, 1, 4, 8, 8, 32, 64, 256)):
            out = bytearray(data)
            for _ in range(bits):
                out[rng.randrange(n)] ^= 1 << rng.randrange(8)
            yield f"{tag}-flip{bits}-{k}", bytes(out)
        for k, cut in enumerate((7, 12, n // 3, n // 2, n - 9)):
            yield f"{tag}-truncate-{k}", data[:cut]
        for k in range(8):
            start, length, const = rng.choice(lay.shapes)
            out = bytearray(data)
            pos = start + 4 * rng.randrange(length)
            if k < 6:
                _put(out, pos, "<i", BIG[(k + 2) % len(BIG)])
            else:
                value = struct.unpack_from("<i", out, pos)[0] ^ (1 << rng.choice((20, 24, 30)))
                _put(out, pos, "<i", value)
            yield f"{tag}-shape-{'const' if const else 'act'}-{k}", bytes(out)
        for k in range(6):
            out = bytearray(data)
            out[rng.choice(lay.types)] = TYPES[(k * 3 + len(tag)) % len(TYPES)]
            yield f"{tag}-type-{k}", bytes(out)
        for k, value in enumerate((0, lay.n_buffers - 1, 1 << 30)):
            out = bytearray(data)
            _put(out, rng.choice(lay.buffers), "<I", value)
            yield f"{tag}-buffer-index-{k}", bytes(out)
        opcode_mutations = [(lay.builtin, "<i", v) for v in (rng.randrange(210), 32, 1000, -5)] + \
                           [(lay.deprecated, "<b", 127), (lay.versions, "<i", 1 << 30)] + \
                           [(lay.opcode_index, "<I", lay.n_opcodes - 1)]
        for k, (positions, fmt, value) in enumerate(opcode_mutations):
            if positions:
                out = bytearray(data)
                _put(out, rng.choice(positions), fmt, value)
                yield f"{tag}-opcode-{k}", bytes(out)
        for k, value in enumerate((0.0, -1.0, math.nan, math.inf, 1e-45, 3e38)):
            if lay.scales and (tag == "int8" or k < 2):
                start, length = rng.choice(lay.scales)
                out = bytearray(data)
                _put(out, start + 4 * rng.randrange(length), "<f", value)
                yield f"{tag}-scale-{k}", bytes(out)
        for k, value in enumerate((1 << 40, -(1 << 40))):
            if lay.zero_points and tag == "int8":
                start, length = rng.choice(lay.zero_points)
                out = bytearray(data)
                _put(out, start + 8 * rng.randrange(length), "<q", value)
                yield f"{tag}-zero-point-{k}", bytes(out)
        for k, value in enumerate((3, 200)):
            if lay.quant_dims and tag == "int8":
                out = bytearray(data)
                _put(out, rng.choice(lay.quant_dims), "<i", value)
                yield f"{tag}-quant-dim-{k}", bytes(out)
        for k, value in enumerate((-1, 1 << 20)):
            start, length = rng.choice(lay.io)
            out = bytearray(data)
            _put(out, start + 4 * rng.randrange(length), "<i", value)
            yield f"{tag}-io-{k}", bytes(out)
        for k, value in enumerate((-1, 0)):
            start, length = rng.choice(lay.op_tensors)
            out = bytearray(data)
            _put(out, start + 4 * rng.randrange(length), "<i", value)
            yield f"{tag}-op-tensor-{k}", bytes(out)
        for k, value in enumerate((0, 1 << 30)):
            if lay.buffer_lengths:
                out = bytearray(data)
                _put(out, rng.choice(lay.buffer_lengths), "<I", value)
                yield f"{tag}-buffer-length-{k}", bytes(out)
        if tag != "dynamic":
            for name, payload in _metadata_payloads():
                if tag == "float32" or name.startswith(("json", "nested-list", "mean-nan", "std-tiny")):
                    yield f"{tag}-meta-{name}", with_metadata(data, payload)


# ---- the driver: runs variants in-process through the command line ------------------------------------------------


def _strict(text: str) -> bool:
    def refuse(name):
        raise ValueError(name)

    try:
        for line in text.splitlines():
            if line.strip():
                json.loads(line, parse_constant=refuse)
    except ValueError:
        return False
    return True


def _drive(image: str) -> None:
    """Driver process: read ``index<TAB>path<TAB>info`` lines on stdin, print one JSON outcome line per variant."""
    import contextlib

    from resnet_edge import cli, guard, loader

    loader.open_model.__kwdefaults__["timeout"] = GUARD_TIMEOUT_S
    now = guard._address_space()
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        if now:
            resource.setrlimit(resource.RLIMIT_AS, (now + DRIVER_CAP, resource.getrlimit(resource.RLIMIT_AS)[1]))
            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    for line in sys.stdin:
        index, path, with_info = line.rstrip("\n").split("\t")
        print(json.dumps({"begin": int(index)}), flush=True)
        commands = [["classify", "--json", "--threads", "1", path, image]]
        if with_info == "1":
            commands.append(["info", "--json", "--threads", "1", path])
        outcome, detail, start = "ran", "", time.perf_counter()
        for argv in commands:
            out, err = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = cli.main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 2
            except BaseException as error:  # noqa: BLE001 - exactly what the fuzzer looks for
                outcome, detail = "traceback", f"{argv[0]}: {type(error).__name__}: {str(error)[:200]}"
                break
            if not _strict(out.getvalue()):
                outcome, detail = "bad_json", f"{argv[0]}: {out.getvalue()[:200]}"
                break
            lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
            if code:
                outcome = "error"
                detail = next((ln for ln in lines if ": error: " in ln), f"exit {code} without an error line")
                if not all(ln.startswith("resnet-edge: ") for ln in lines):
                    outcome, detail = "traceback", f"{argv[0]}: unexpected output: {lines[:3]}"
                break
        print(json.dumps({"index": int(index), "outcome": outcome, "detail": detail,
                          "seconds": round(time.perf_counter() - start, 2)}), flush=True)


_DRIVER = "import sys; sys.path.insert(0, sys.argv[1]); from fuzz import _drive; _drive(sys.argv[2])"


@dataclass
class Report:
    outcomes: dict[str, dict] = field(default_factory=dict)  # name -> {"outcome", "detail", "seconds"}
    seconds: float = 0.0

    def counts(self) -> Counter:
        return Counter(v["outcome"] for v in self.outcomes.values())

    def bad(self) -> dict[str, dict]:
        return {k: v for k, v in self.outcomes.items() if v["outcome"] not in ("error", "ran")}


def _worker(jobs: list[tuple[int, str, str, bool]], image: str, results: dict, limit_s: float) -> None:
    """Run ``jobs`` through driver processes, restarting after a crash or a hang."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (DEPLOY, os.environ.get("PYTHONPATH")) if p))
    pending = list(jobs)
    while pending:
        proc = subprocess.Popen([sys.executable, "-c", _DRIVER, HERE, image], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        proc.stdin.write("".join(f"{i}\t{path}\t{int(info)}\n" for i, _, path, info in pending))
        proc.stdin.close()
        names = {i: name for i, name, _, _ in pending}
        current, deadline = None, time.monotonic() + limit_s + 30  # the first variant also pays the imports
        buffer = ""
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:  # the current variant ran past the limit
                proc.kill()
                proc.wait()
                if current is not None:
                    results[names[current]] = {"outcome": "hang", "detail": f"over {limit_s:g} s", "seconds": limit_s}
                break
            chunk = os.read(proc.stdout.fileno(), 65536).decode(errors="replace")
            if not chunk:
                code = proc.wait()
                if current is not None:
                    how = f"signal {-code}" if code < 0 else f"exit {code}"
                    results[names[current]] = {"outcome": "signal" if code < 0 else "traceback",
                                               "detail": f"the driver died ({how})", "seconds": 0.0}
                break
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in lines:
                message = json.loads(line)
                if "begin" in message:
                    current, deadline = message["begin"], time.monotonic() + limit_s
                else:
                    results[names[message["index"]]] = {k: message[k] for k in ("outcome", "detail", "seconds")}
                    current = None
        before = len(pending)
        pending = [job for job in pending if job[1] not in results]
        if len(pending) == before:  # the driver died before its first variant: count it, never loop
            first = pending.pop(0)
            results[first[1]] = {"outcome": "traceback", "detail": "the driver failed to start", "seconds": 0.0}


def run(folder: str, *, workers: int = 2, seed: int = SEED, limit_s: float = VARIANT_LIMIT_S) -> Report:
    """Write every variant into ``folder`` and run them; returns the :class:`Report`."""
    import threading

    import numpy as np
    from PIL import Image

    image = os.path.join(folder, "image.png")
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    jobs = []
    for i, (name, content) in enumerate(variants(seed)):
        path = os.path.join(folder, f"{i:03d}-{name}.tflite")
        with open(path, "wb") as f:
            f.write(content)
        jobs.append((i, name, path, "-meta-" in name))
    results: dict[str, dict] = {}
    start = time.perf_counter()
    threads = [threading.Thread(target=_worker, args=(jobs[k::workers], image, results, limit_s))
               for k in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    order = {name: i for i, name, _, _ in jobs}
    return Report(dict(sorted(results.items(), key=lambda kv: order[kv[0]])), time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--keep", metavar="DIR", help="write the variants here (default: a temporary folder)")
    p.add_argument("--verbose", action="store_true", help="print every variant's outcome")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        report = run(folder, workers=args.workers, seed=args.seed)
    for name, result in report.outcomes.items():
        if args.verbose or result["outcome"] not in ("error", "ran"):
            print(f"{result['outcome']:9} {result['seconds']:6.2f} s  {name}: {result['detail']}")
    counts = report.counts()
    print(f"{len(report.outcomes)} variants in {report.seconds:.0f} s: " +
          ", ".join(f"{k} {counts.get(k, 0)}" for k in ("error", "ran", "traceback", "signal", "hang", "bad_json")))
    return 1 if report.bad() else 0


if __name__ == "__main__":
    sys.exit(main())
