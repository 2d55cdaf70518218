"""Layer 8, cli: the keras-resnet command line and the demo. Nothing in the library imports it."""
