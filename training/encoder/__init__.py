"""Learned approximate inference (Goodfellow et al. 2014, section 7): an encoder E, trained after G
with G frozen, that maps a sample back to the latent it came from (z, or w for a style-based model)."""
