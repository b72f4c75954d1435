"""Shipped hazard models (ONNX + manifests) and the training pipeline. Installed as `hazardwatch.models`."""
