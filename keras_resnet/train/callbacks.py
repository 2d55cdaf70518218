"""What a run does at each epoch's end (:func:`epoch_end_class`: time, history row, backup, commit), its divergence
check, the TensorBoard callback and the loss/accuracy curves (``curves.png``).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import time

from keras_resnet.core.errors import ConfigError
from keras_resnet.core.files import atomic_path, save_figure
from keras_resnet.train.recipe import swap_ema
from keras_resnet.train.state import RunState


def save_model(model, path: str) -> None:
    """``model.save(path)`` atomically (a temporary file renamed into place)."""
    with atomic_path(path) as tmp:  # the temporary name keeps the .keras suffix Keras requires
        model.save(tmp)


def plot_curves(rows: list[dict], path: str, title: str = "") -> None:
    """Loss and accuracy per epoch (train and validation) as a PNG, written atomically."""
    # No pyplot: the caller's backend (a notebook's inline one) is left alone.
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for prefix, style in (("", "--"), ("val_", "-")):
            values = [r.get(prefix + metric) for r in rows]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, label=("validation " if prefix else "train ") + metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)




def check_finite_losses(logs: dict, epoch: int, state: RunState, shown: str) -> None:
    """Raise :class:`ConfigError` when an epoch ended with a NaN or infinite loss: the run stops there, and the
    committed state (last.keras, best.keras, backup/) stays at the last good epoch."""
    bad = {k: logs[k] for k in ("loss", "val_loss") if k in logs and not math.isfinite(float(logs[k]))}
    if not bad:
        return
    what = ", ".join(f"{k} {float(v)}" for k, v in bad.items())
    kept = (f"{shown} keeps epoch {state.epoch}, the last good one" if state.epoch else
            "no epoch completed, so nothing was saved")
    raise ConfigError(f"training diverged at epoch {epoch} ({what}); stopped: {kept}. Try a lower --lr (with "
                      "another --output: a run resumes only with its own arguments)")


@functools.cache
def epoch_end_class():
    import keras

    class EpochEnd(keras.callbacks.Callback):
        """Times each epoch, logs the learning rate, then saves the backup and commits the run state."""

        def __init__(self, state: RunState, model_dir: str, n_train: int, monitor: str = "val_accuracy",
                     shown: str | None = None, ema: bool = False):
            super().__init__()
            self.state, self.model_dir, self.n_train, self.monitor = state, model_dir, n_train, monitor
            self.ema = ema  # validate and publish the moving average of the weights
            self.shown = shown or state.output
            self.epoch_times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            self.t_train = None

        def on_test_begin(self, logs=None):
            if self.t_train is None:
                self.t_train = time.perf_counter() - self.t0
            if self.ema:
                swap_ema(self.model)

        def on_test_end(self, logs=None):
            if self.ema:
                swap_ema(self.model)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            check_finite_losses(logs, epoch + 1, self.state, self.shown)  # before anything of this epoch is kept
            seconds = time.perf_counter() - self.t0
            train_seconds = self.t_train if self.t_train is not None else seconds
            self.epoch_times.append(train_seconds)
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
                   "epoch_time_s": round(seconds, 3), "train_images_per_s": round(self.n_train / train_seconds, 1)}
            st = self.state
            name = resume = f"epoch-{epoch + 1}.keras"
            save_model(self.model, os.path.join(self.model_dir, name))
            if self.ema:  # resume from the raw weights (with the averages in the optimizer); publish the averages
                name = f"epoch-{epoch + 1}-ema.keras"
                swap_ema(self.model)
                try:
                    save_model(self.model, os.path.join(self.model_dir, name))
                finally:
                    swap_ema(self.model)
            value = logs.get(self.monitor)
            best = st.best
            if value is not None and (best is None or value > best["value"]):
                best = {"epoch": epoch + 1, "value": float(value), "file": name}
            st.epoch, st.rows, st.best, st.last_file = epoch + 1, [*st.rows, row], best, name
            st.resume_file = resume if self.ema else None
            st.train_time += seconds
            st.commit()

    return EpochEnd



def tensorboard_callbacks(logdir: str, verbose) -> list:
    """``[keras.callbacks.TensorBoard(logdir)]`` when the tensorboard package is installed, else ``[]`` (and a note)."""
    import keras

    if importlib.util.find_spec("tensorboard") is not None:
        return [keras.callbacks.TensorBoard(logdir)]
    if verbose:
        print("note: the tensorboard package is not installed; no TensorBoard logs (pip install tensorboard)")
    return []
