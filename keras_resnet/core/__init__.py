"""Layer 0, core: typed errors, version-guarded compat shims, the quiet console, atomic files, the run lock and the restricted unpicklers. Imports no Keras and nothing else of keras_resnet."""
