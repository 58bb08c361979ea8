"""gradejax: debugging deep image classifiers in JAX.

The pipeline's stages are subpackages, and imports flow one way, from the top of this list
down to nothing above it:

  data -> nets -> training / evaluation -> attribution / featurevis -> report

``gradejax.paths`` (dlib model files), ``gradejax.logs`` (library log filter),
``gradejax.imageops`` (the one Gaussian blur, ...) and ``gradejax.distributed`` (multi-host set-up)
are leaves every stage may use. The commands
(``python -m gradejax.prepare|train|evaluate|visualize|featurevis|demo_data``, or the console
scripts ``gradejax-*``) sit above everything. Submodules are imported explicitly; this file
imports nothing, so that a command pays only for what it uses.
"""
__version__ = '0.2.0'
