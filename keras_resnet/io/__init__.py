"""Layer 4, io: safe loading of model files, weight files from strangers (no code from the file), timm / torchvision / keras-hub import."""
