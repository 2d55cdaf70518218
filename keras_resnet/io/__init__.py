"""Layer 4, io: safe loading of model files (allowlist, model_checks, model_io), weight files from strangers
(weights: no code from the file), the preprocessing record (preprocessing), and timm / torchvision / keras-hub import
(hub; import_common, torch_sources, torch_mapping, keras_hub_presets)."""
