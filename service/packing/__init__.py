"""`python -m service pack`: make a servable model folder from ONNX graphs made anywhere.

Needs only what serving needs (onnxruntime, numpy, pillow, `models`): no torch, no onnx package.
`python -m training pack` exports a torch module to ONNX and hands the files to this same code.
"""
