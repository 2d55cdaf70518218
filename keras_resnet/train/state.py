"""The committed progress of a run (:class:`RunState`): what makes a run resumable.

Everything a run writes lives in its output folder::

    best.keras  last.keras  history.csv  summary.json  curves.png  logs/ (TensorBoard)  backup/

``backup/`` makes a run resumable: a run killed at any moment (SIGKILL included) and restarted with
the same arguments continues after its last completed epoch. After every epoch the model (with its
optimizer state) is saved to ``backup/``, then ``backup/state.json`` is replaced atomically (the commit
point, :meth:`RunState.commit`), then ``last.keras``, ``best.keras`` and ``history.csv`` are published from the
committed state (:meth:`RunState.publish`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from dataclasses import asdict

from keras_resnet.core.errors import ConfigError, DataError
from keras_resnet.core.files import atomic_write, publish
from keras_resnet.spec.recipe import Recipe

STATE_VERSION = 1


def _history_csv(rows: list[dict]) -> str:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()



class RunState:
    """The committed progress of a run in ``OUTPUT/backup/state.json`` and the files published from it."""

    def __init__(self, output: str, write: bool):
        self.output = output
        self.backup = os.path.join(output, "backup")
        self.write = write
        self.epoch = 0
        self.rows: list[dict] = []
        self.best: dict | None = None  # {"epoch", "value", "file"}
        self.last_file: str | None = None
        self.resume_file: str | None = None  # with EMA: the raw weights + optimizer; last_file holds the averages
        self.train_time = 0.0
        self.recipe: dict | None = None
        self.starts: list[int] = []

    @property
    def path(self) -> str:
        return os.path.join(self.backup, "state.json")

    def restore(self, recipe: dict) -> bool:
        if not os.path.isfile(self.path):
            return False
        try:
            with open(self.path) as f:
                state = json.load(f)
            self.epoch, self.rows, self.best = state["epoch"], state["history"], state["best"]
            self.last_file, self.train_time, self.recipe = state["last_file"], state["train_time_s"], state["recipe"]
            self.starts = state.get("starts", [])
            self.resume_file = state.get("resume_file")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"cannot resume: {self.path} is unreadable ({error}); delete {self.backup} to restart"
                            ) from error
        defaults = asdict(Recipe())  # fields added since the run started count with their default value
        saved = {**defaults, **self.recipe} if isinstance(self.recipe, dict) else self.recipe
        if saved != recipe:
            changed = sorted(k for k in set(recipe) | set(saved) if recipe.get(k) != saved.get(k))
            raise ConfigError(f"{self.output} holds a run with different arguments ({', '.join(changed)}); "
                            f"use another --output or delete the folder")
        return True

    def commit(self) -> None:
        if not self.write:
            return
        state = {"version": STATE_VERSION, "epoch": self.epoch, "history": self.rows, "best": self.best,
                 "last_file": self.last_file, "train_time_s": self.train_time, "recipe": self.recipe,
                 "starts": self.starts, "resume_file": self.resume_file}
        atomic_write(self.path, json.dumps(state, indent=1))
        self.publish()

    def publish(self) -> None:
        """Make last.keras, best.keras, history.csv match the committed state; drop stale backups."""
        if not self.write:
            return
        if self.last_file:
            publish(os.path.join(self.backup, self.last_file), os.path.join(self.output, "last.keras"))
        if self.best:
            publish(os.path.join(self.backup, self.best["file"]), os.path.join(self.output, "best.keras"))
        atomic_write(os.path.join(self.output, "history.csv"), _history_csv(self.rows))
        keep = {"state.json", self.last_file, self.resume_file, self.best and self.best["file"]}
        for name in os.listdir(self.backup):
            if name not in keep:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.backup, name))
