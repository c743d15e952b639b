"""What a run needs from its surroundings, below everything else: where the caches live, the
torchrun process group, content digests of tensors, and the progress bar."""
