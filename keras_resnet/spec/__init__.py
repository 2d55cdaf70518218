"""Layer 1, spec: configuration as data (the depth table, block options, named-model specs) and the option dataclasses whose fields generate the command line. No Keras."""
