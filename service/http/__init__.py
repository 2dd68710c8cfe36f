"""The HTTP layer: routes, middleware, errors, the OpenAPI document, /v2 and /ui."""
