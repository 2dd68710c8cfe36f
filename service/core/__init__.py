"""A request's work, without Starlette: schemas, latents, labels, sampling, encoding."""
