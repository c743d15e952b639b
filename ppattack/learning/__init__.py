"""Training networks: the training loop's helpers, multi-process runs (torchrun), the cache of
trained networks, the base of attacks that train a network (``trained_attack``), the protected
classifier, and the attacks' networks (``nets``)."""
