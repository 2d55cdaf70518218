"""Layer 6, quant: native Keras 3 QAT, tfmot QAT through a tf_keras twin, and the parts they share."""
