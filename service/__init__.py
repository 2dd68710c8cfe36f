"""Serving: the BentoML service, the onnxruntime engine, and the dataset generator.

May import bentoml, onnxruntime, numpy, pydantic, pillow and `models`; never torch or `training`.
"""
