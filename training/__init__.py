"""Training: datasets, the paper's networks and Algorithm 1, checkpoints, evaluation, ONNX export.

May import torch, numpy and `models`; never `service` or bentoml (see docs/ARCHITECTURE.md).
"""
