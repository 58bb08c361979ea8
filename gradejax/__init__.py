"""gradejax: debugging deep image classifiers in JAX.

Submodules are imported explicitly (``from gradejax import facenet``); this file imports
nothing so that a CLI pays only for what it uses.
"""
