"""Training networks: the training loop's helpers, multi-process runs (torchrun), the cache of
trained networks, the protected classifier, and the attacks' networks (``nets``)."""
