"""The worker's engine: graphs, micro-batchers, backends, providers, the model registry, memory and admission."""
