"""A Keras 3 model's *tf_keras twin*: the same graph and weights rebuilt in tf_keras (Keras 2), for tfmot.

tfmot 0.8.1 quantizes only tf_keras models. :func:`to_tf_keras` walks any Keras 3 functional (or sequential, or
nested) model's graph in order, rebuilds every layer in tf_keras from its class name and cleaned config,
reconnects the inbound nodes (multi-input layers and shared layers included), copies the weights and checks with
:func:`parity` on random input that the twin computes the same function (max |diff| ≈ 0).

With ``for_qat=True`` the twin is prepared for int8: a BatchNormalization that tfmot cannot fold into a preceding
conv (the pre-activation BNs of ResNet V2, ``post_bn``) and the input ``Normalization`` become an equivalent 1×1
``DepthwiseConv2D`` (scale = γ/√(σ²+ε), bias = β − μ·scale), which tfmot quantizes per channel and TFLite runs as
one int8 op; the Normalization's conv is not trainable (see :func:`keras_resnet.quant.tfmot_qat.fine_tune`).

tf_keras is imported inside the functions. This module never uses ``tf.keras``; it says ``keras`` (3) or
``tf_keras``.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from keras_resnet.core.errors import ModelFileError
from keras_resnet.quant.common import affine_of, as_numpy, keras_history_refs, ref_list, substitute

# Keras 3 config keys tf_keras does not know and whose default value changes nothing.
_BASE_KEYS = {"name", "trainable", "dtype"}
# Layers that carry code or are not layers tfmot or TFLite can see.
_REFUSED = {"Lambda", "TFOpLambda", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}
# Layers a following BatchNormalization folds into (in the twin and in tfmot's transforms).
FOLDABLE_INTO = {"Conv2D", "DepthwiseConv2D", "Dense"}


class TranslationError(ModelFileError):
    """A Keras 3 model that cannot be rebuilt in tf_keras (Lambda, custom or unknown layers)."""



def _clean(value: Any) -> Any:
    """Keras 3 serialized objects → the ``{"class_name", "config"}`` form tf_keras deserializes."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" or value.get("class_name") == "FloatDTypePolicy":
            return value.get("config", {}).get("name", "float32")
        if "class_name" in value and "config" in value:
            if value.get("registered_name") not in (None, value["class_name"]):
                raise TranslationError(f"custom object {value['registered_name']!r} cannot be rebuilt in tf_keras")
            return {"class_name": value["class_name"], "config": _clean(value["config"])}
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clean(v) for v in value)
    return value


def _layer_class(spec: dict):
    import tf_keras

    from keras_resnet.model.blocks import tf_keras_channel_padding

    name = spec["class_name"]
    if spec.get("registered_name") == "keras_resnet>ChannelPadding":
        return tf_keras_channel_padding()
    module = spec.get("module") or "keras.layers"
    if name in _REFUSED or spec.get("registered_name") not in (None, name) or not module.startswith("keras"):
        raise TranslationError(
            f"layer {spec['config'].get('name', '?')!r} ({spec.get('registered_name') or name}) cannot be "
            f"translated to tf_keras for QAT: only built-in Keras layers can; replace Lambda/custom layers "
            f"with built-in ones")
    cls = getattr(tf_keras.layers, name, None)
    if cls is None:
        raise TranslationError(f"layer {spec['config'].get('name', '?')!r}: tf_keras has no layer {name}")
    return cls


def _tf_keras_layer(spec: dict):
    cls = _layer_class(spec)
    config = _clean(spec["config"])
    accepted = set(_BASE_KEYS)
    for base in cls.__mro__:  # subclasses pass **kwargs on to their bases (BatchNormalization's renorm...)
        if "__init__" in vars(base):
            accepted |= set(inspect.signature(base.__init__).parameters)
    dropped = {k: v for k, v in config.items() if k not in accepted}
    meaningful = {k: v for k, v in dropped.items() if v not in (None, False, 0, 1, [], {}, "channels_last")}
    if meaningful:
        raise TranslationError(f"layer {config['name']!r} ({spec['class_name']}) uses Keras 3 options tf_keras "
                               f"lacks: {sorted(meaningful)}")
    # Weights are copied, so initializers do not matter (and Keras 3 adds arguments tf_keras lacks).
    config = {k: v for k, v in config.items() if k in accepted and not k.endswith("_initializer")}
    if spec["class_name"] == "Normalization":  # constants arrive as lists; tf_keras wants arrays
        for key in ("mean", "variance"):
            if config.get(key) is not None:
                config[key] = np.asarray(config[key], "float32")
    return cls.from_config(config)


def _transfer(source, target) -> None:
    """Copy a Keras 3 layer's weights to its tf_keras twin, by weight name (order as a fallback)."""
    if not target.weights:
        return
    values = {w.name.split("/")[-1].split(":")[0]: as_numpy(w) for w in source.weights}
    ordered = [values.get(w.name.split("/")[-1].split(":")[0]) for w in target.weights]
    if any(v is None for v in ordered):
        ordered = [as_numpy(w) for w in source.weights]
    if len(ordered) != len(target.weights):
        raise TranslationError(f"layer {source.name!r}: {len(source.weights)} weights in Keras 3 but "
                               f"{len(target.weights)} in tf_keras")
    target.set_weights(ordered)


class _Translator:
    def __init__(self, for_qat: bool):
        self.for_qat = for_qat
        self.standalone: set[str] = set()  # names of BN/Normalization layers rebuilt as depthwise convs
        self.built: dict[int, dict] = {}  # id(Keras 3 layer) → its twin (shared layers are built once)

    def model(self, model):
        import tf_keras

        inputs = [tf_keras.Input(batch_shape=tuple(t.shape), dtype=str(t.dtype).split(".")[-1],
                                 name=_input_name(t, i)) for i, t in enumerate(model.inputs)]
        outputs = self.call(model, inputs)
        single = not isinstance(model.output, (list, tuple, dict))
        return tf_keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if single else outputs,
                              name=model.name)

    def call(self, model, inputs: list) -> list:
        """Rebuild ``model``'s graph in tf_keras on the tf_keras tensors ``inputs``; return its outputs."""
        kind = type(model).__name__
        if kind == "Sequential":
            x = inputs[0]
            for layer in model.layers:
                x = self.layer(layer, [x], None)[0]
            return [x]
        if kind != "Functional":
            raise TranslationError(f"model {model.name!r} ({kind}) is subclassed; only functional and sequential "
                                   f"models can be translated to tf_keras")
        config = model.get_config()
        tensors: dict[tuple, Any] = {}
        for ref, tensor in zip(ref_list(config["input_layers"]), inputs, strict=True):
            tensors[ref] = tensor
        consumers: dict[str, int] = {}
        for spec in config["layers"]:
            for node in spec["inbound_nodes"]:
                for ref in keras_history_refs(node):
                    consumers[ref[0]] = consumers.get(ref[0], 0) + 1
        kinds = {spec["name"]: spec["class_name"] for spec in config["layers"]}
        for spec in config["layers"]:
            if spec["class_name"] == "InputLayer":
                continue
            layer = model.get_layer(spec["name"])
            for node_index, node in enumerate(spec["inbound_nodes"]):
                refs = keras_history_refs(node)
                foldable = (len(refs) == 1 and kinds.get(refs[0][0]) in FOLDABLE_INTO
                            and consumers.get(refs[0][0]) == 1
                            and model.get_layer(refs[0][0]).get_config().get("activation") == "linear")
                args = substitute(node.get("args", []), tensors)
                kwargs = substitute(node.get("kwargs", {}), tensors)
                outputs = self.layer(layer, args, kwargs, spec=spec, foldable=foldable, node_index=node_index)
                for i, out in enumerate(outputs):
                    tensors[(spec["name"], node_index, i)] = out
        return [tensors[ref] for ref in ref_list(config["output_layers"])]

    def layer(self, layer, args, kwargs, *, spec=None, foldable=False, node_index=0) -> list:
        import tf_keras

        kind = type(layer).__name__
        if kind in ("Functional", "Sequential"):
            flat = [a for a in (args[0] if len(args) == 1 and isinstance(args[0], list) else args)]
            outs = self.call(layer, flat)
            return outs
        if kind == "InputLayer":
            return list(args)
        if spec is None:
            import keras

            spec = keras.saving.serialize_keras_object(layer)
        cache = self.built.setdefault(id(layer), {})
        if "layer" not in cache:
            affine = None
            if self.for_qat and kind in ("BatchNormalization", "Normalization") and not foldable:
                affine = affine_of(layer)
            if affine is not None:
                twin = tf_keras.layers.DepthwiseConv2D(1, use_bias=True, name=layer.name,
                                                       trainable=layer.trainable and kind != "Normalization")
                cache.update(layer=twin, affine=affine)
                self.standalone.add(layer.name)
            else:
                cache.update(layer=_tf_keras_layer(spec), affine=None)
        twin = cache["layer"]
        call_args = list(args) if isinstance(args, (list, tuple)) else [args]
        if len(call_args) == 1 and isinstance(call_args[0], list) and len(call_args[0]) == 1 and kind not in (
                "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot"):
            call_args = call_args[0]
        kwargs = {k: v for k, v in (kwargs or {}).items() if k not in ("training", "mask") or v is not None}
        out = twin(*call_args, **kwargs)
        if not cache.get("weighted"):
            if cache["affine"] is not None:
                scale, offset = cache["affine"]
                twin.set_weights([scale.reshape(1, 1, -1, 1), offset])
            else:
                _transfer(layer, twin)
            cache["weighted"] = True
        return list(out) if isinstance(out, (list, tuple)) else [out]


def _input_name(tensor, index: int) -> str:
    name = getattr(tensor, "name", None) or f"input_{index}"
    return name.split(":")[0].replace("/", "_")


def to_tf_keras(model, *, for_qat: bool = False, check: bool = True, atol: float = 1e-4):
    """Rebuild a Keras 3 functional/sequential model in tf_keras with the same weights.

    ``for_qat`` also rewrites unfoldable BatchNormalization and Normalization layers as equivalent 1×1
    depthwise convs (see the module docstring). ``check`` runs both models on the same random input and
    raises if their outputs differ by more than ``atol`` (relative to the output scale).
    """
    translator = _Translator(for_qat)
    twin = translator.model(model)
    if check:
        diff = parity(model, twin)
        if diff > atol:
            raise TranslationError(f"the tf_keras twin of {model.name} differs from it by {diff:.3g} (> {atol}); "
                                   f"a layer's config did not translate faithfully")
    return twin


def parity(model, twin, *, samples: int = 2, seed: int = 0) -> float:
    """Max |Keras 3 − tf_keras| over outputs on random input (pixels in [0, 255] for image models),
    divided by max(1, max |output|)."""
    rng = np.random.default_rng(seed)
    feeds = []
    for t in model.inputs:
        shape = (samples, *[d or 32 for d in t.shape[1:]])
        feeds.append(rng.uniform(0, 255, shape).astype("float32") if len(shape) == 4
                     else rng.normal(size=shape).astype("float32"))
    with warnings.catch_warnings():  # Keras 3 warns when a list-input model gets a bare tensor
        warnings.simplefilter("ignore")
        ours = model(feeds[0] if len(feeds) == 1 else feeds, training=False)
        theirs = twin(feeds[0] if len(feeds) == 1 else feeds, training=False)
    ours = [ours] if not isinstance(ours, (list, tuple, dict)) else list(ours.values() if isinstance(ours, dict) else ours)
    theirs = [theirs] if not isinstance(theirs, (list, tuple, dict)) else list(
        theirs.values() if isinstance(theirs, dict) else theirs)
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        a, b = as_numpy(a), np.asarray(b, "float32")
        worst = max(worst, float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(a)))))
    return worst
