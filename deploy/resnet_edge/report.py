"""What ``resnet-edge check`` found: :class:`Finding` (severity ``error``, ``fallback`` or ``note``, with the op it
concerns) and :class:`Report` (the findings, the per-op status table, the parameter bytes, the compiler's log), as
text lines or a JSON-ready dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MB = 1 << 20


@dataclass
class Finding:
    severity: str  # error | fallback | note
    message: str
    op: str | None = None  # NAME#index

    def line(self) -> str:
        return f"{self.severity:<8} {self.op + ': ' if self.op else ''}{self.message}"


@dataclass
class Report:
    model: str
    target: str
    findings: list[Finding] = field(default_factory=list)
    ops: list[dict[str, Any]] = field(default_factory=list)  # per op: name, version, index, status
    parameter_bytes: int = 0
    compiler: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    compiled: bytes | None = field(default=None, repr=False)  # the compiler's output file (ethos-u: *_vela.tflite)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "target": self.target, "ok": self.ok, "errors": self.count("error"),
                "fallbacks": self.count("fallback"), "findings": [asdict(f) for f in self.findings],
                "ops": self.ops, "parameter_bytes": self.parameter_bytes, "compiler": self.compiler, **self.extra}

    def lines(self) -> list[str]:
        """The report as text: a per-op table (op, version, count, status) like the compiler's log, then findings."""
        rows: dict[tuple[str, int, str], int] = {}
        for op in self.ops:
            key = (op["name"], op["version"], op["status"])
            rows[key] = rows.get(key, 0) + 1
        width = max([len(n) for n, _, _ in rows] + [8])
        out = [f"{self.model}: target {self.target}, {len(self.ops)} ops, parameters {self.parameter_bytes / MB:.2f} MB",
               f"{'operator':<{width}}  version  count  status"]
        out += [f"{n:<{width}}  {v:>7}  {c:>5}  {s}" for (n, v, s), c in sorted(rows.items())]
        out += [f.line() for f in self.findings]
        verdict = "passes" if self.ok else "fails"
        out.append(f"{verdict} the {self.target} contract: {self.count('error')} errors, "
                   f"{self.count('fallback')} fallbacks")
        return out
