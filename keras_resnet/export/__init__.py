"""Layer 7, export: target planning, TFLite tracing and conversion, validation in resnet-edge, metadata and ai-edge-quantizer."""
