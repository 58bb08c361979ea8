"""dlib's face ResNet in torch, built from our Flax params, for benchmarks only (captum needs a
torch module). ``build`` needs torch (the scratch venv); ``flatten`` is numpy-only. Never
imported by gradejax.

The layer rules are gradejax.nets.facenet's (its docstring; shared/reference/dlib_resnet_format.md):
input ``x * 255 - mean_c`` then ``/ 256``; stem conv 7x7/2 (no padding) -> affine -> ReLU -> max
pool 3x3/2; levels (32, 3, plain), (64, 4, down), (128, 3, down), (256, 3, down), (256, 1,
down); a block is ``relu(affine(conv(relu(affine(conv(x))))) + shortcut)`` with conv1 stride 2
(no padding) in a down block, else padding k // 2, the shortcut ``avgpool2x2(x)`` in a down
block, added with zeros padded at the high end where shapes differ; global mean; 128-D linear
map without bias.

``flatten(params, means)`` (numpy, on the JAX side) -> {'face__stem__conv__kernel': array,
...}; ``build(d)`` (here) -> ``FaceResNetTorch`` taking NCHW float images in [0, 1] -> [B, 128] descriptors.
"""
from __future__ import annotations

import numpy as np

try:  # the JAX side (benchmarks/perturbation.py) imports this file for flatten() only
  import torch
  import torch.nn.functional as F
except ImportError:
  torch = None

PREFIX = 'face__'  # the npz keys of the face net's arrays ('face__stem__conv__kernel', ...)
LEVELS = (('level4', 3, False), ('level3', 4, True), ('level2', 3, True), ('level1', 3, True),
          ('level0', 1, True))


if torch is not None:
  def _pad_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add of mismatched shapes: both zero-padded at the high end (C, H, W) to the max."""
    shape = [max(i, j) for i, j in zip(a.shape, b.shape)]

    def pad(t):
      # F.pad lists (W_lo, W_hi, H_lo, H_hi, C_lo, C_hi)
      return F.pad(t, (0, shape[3] - t.shape[3], 0, shape[2] - t.shape[2],
                       0, shape[1] - t.shape[1]))
    return pad(a) + pad(b)


  class FaceResNetTorch(torch.nn.Module):
    def __init__(self, d: dict[str, np.ndarray]):
      super().__init__()
      self.w = torch.nn.ParameterDict()
      for k, v in d.items():
        if not k.startswith(PREFIX) or k == PREFIX + 'input_means':
          continue
        t = torch.tensor(np.asarray(v, np.float32))
        if k.endswith('kernel') and t.ndim == 4:
          t = t.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
        self.w[k[len(PREFIX):]] = torch.nn.Parameter(t, requires_grad=False)
      self.register_buffer('means', torch.tensor(np.asarray(d[PREFIX + 'input_means'],
                                                            np.float32)))

    def _p(self, name):
      return self.w[name.replace('/', '__')]

    def _conv(self, x, name, stride):
      k = self._p(name + '/kernel')
      pad = 0 if stride != 1 else k.shape[2] // 2
      return F.conv2d(x, k, self._p(name + '/bias'), stride=stride, padding=pad)

    def _affine(self, x, name):
      per_channel = lambda v: v[None, :, None, None]
      return x * per_channel(self._p(name + '/scale')) + per_channel(self._p(name + '/bias'))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
      x = (images * 255.0 - self.means[None, :, None, None]) / 256.0
      x = F.relu(self._affine(self._conv(x, 'stem/conv', 2), 'stem/affine'))
      x = F.max_pool2d(x, 3, 2)
      for level, blocks, down in LEVELS:
        for b in range(blocks):
          p = f'{level}/block{b}'
          d = down and b == 0
          y = F.relu(self._affine(self._conv(x, p + '/conv1', 2 if d else 1), p + '/affine1'))
          y = self._affine(self._conv(y, p + '/conv2', 1), p + '/affine2')
          x = F.relu(_pad_add(y, F.avg_pool2d(x, 2, 2) if d else x))
      return x.mean(dim=(2, 3)) @ self._p('fc/kernel')


def flatten(params, means) -> dict[str, np.ndarray]:
  """Our Flax params pytree (nested dicts) + input means -> flat name -> float32 array."""
  out = {PREFIX + 'input_means': np.asarray(means, np.float32)}

  def walk(prefix, node):
    for k, v in node.items():
      if hasattr(v, 'items'):
        walk(f'{prefix}{k}__', v)
      else:
        out[f'{prefix}{k}'] = np.asarray(v, np.float32)
  walk(PREFIX, params)
  return out


def flatten_classifier(variables, means) -> dict[str, np.ndarray]:
  """A trained run's GradeClassifier variables (face ResNet + head) -> the flat arrays the torch
  ports read: :func:`flatten` of the extractor plus the head's standardisation and two dense
  layers (``head_*``; tcav_captum_torch.DemoNet builds the classifier from them)."""
  p, norm = variables['params']['head'], variables['norm']['head']
  out = {'head_mean': np.asarray(norm['mean']), 'head_std': np.asarray(norm['std']),
         'head_w0': np.asarray(p['dense0']['kernel']), 'head_b0': np.asarray(p['dense0']['bias']),
         'head_w1': np.asarray(p['out']['kernel']), 'head_b1': np.asarray(p['out']['bias'])}
  out.update(flatten(variables['params']['extractor'], means))
  return out


def build(d) -> 'FaceResNetTorch':
  """The torch face ResNet from an npz (or dict) holding :func:`flatten`'s arrays."""
  return FaceResNetTorch({k: d[k] for k in d.keys() if k.startswith(PREFIX)}).eval()
