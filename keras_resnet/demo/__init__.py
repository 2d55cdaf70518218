"""Layer 9, demo: the whole story on bundled data (train, QAT, four TFLite formats, the device runner), as
`keras-resnet demo` runs it. Above export, below cli."""
