"""Editing directions in a model's latent space (z, or w for a style-based model): GANSpace's
principal directions and InterFaceGAN-style class directions, stored as directions.json."""
