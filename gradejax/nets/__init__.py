"""Networks: the calling convention every probed network follows, dlib's face ResNet and the
grade classifier on top of it.

``from gradejax import nets`` gives the calling convention (``nets.tap``, ``nets.bind``, ...;
see :mod:`gradejax.nets.convention`); the networks are submodules (``gradejax.nets.facenet``,
``gradejax.nets.classifier``) imported explicitly.
"""
from gradejax.nets.convention import (Array, Bound, ModelFn, Relu, activation_shapes, bind,
                                      jit_model_fn, tap, tap_order, zero_perturbations_like)

__all__ = ['Array', 'Bound', 'ModelFn', 'Relu', 'activation_shapes', 'bind', 'jit_model_fn', 'tap',
           'tap_order', 'zero_perturbations_like']
