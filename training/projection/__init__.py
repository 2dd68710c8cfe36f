"""Projection: the slow, exact way into latent space, by gradient descent on the latent through G
(run in torch from the folder's ONNX graphs), starting from E's one-pass guess."""
