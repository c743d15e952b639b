"""A dataset's images: decoded once into a memory-mapped disk cache, served per role at one
square size."""
