"""Layer 2, model: Keras blocks over built-in layers, the one builder, the generated named-model functions and the LR schedule."""
