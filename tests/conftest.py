"""Every test process runs TensorFlow as the ``keras-resnet`` command does: with oneDNN's kernels preferred on AVX2
CPUs (keras_resnet.core.console.prefer_onednn), decided here before any test module imports TensorFlow."""

from keras_resnet.core.console import prefer_onednn

prefer_onednn()
