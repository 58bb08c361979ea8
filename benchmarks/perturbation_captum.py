"""The captum side of benchmarks/perturbation.py (run by it in a scratch venv with torch and
captum; never imported by gradejax). Reads from an .npz the small conv net's weights and/or
the face ResNet's (``face__*``, benchmarks/face_resnet_torch.py), the images, targets and
segments, checks each torch net reproduces the JAX outputs, times captum's FeatureAblation /
KernelShap / Occlusion on each and prints one JSON line ({'small': {...}, 'face': {...}}).

  python benchmarks/perturbation_captum.py IN.npz '{"shap_samples": 256, ...}'
"""
import json
import statistics
import sys
import time

import numpy as np
import torch
from captum.attr import FeatureAblation, KernelShap, Occlusion

import face_resnet_torch


def build(d):
  layers, i = [], 0
  while f'w{i}' in d:  # the small conv net
    w = torch.tensor(d[f'w{i}']).permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
    conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=int(d[f's{i}']),
                           padding=w.shape[2] // 2)
    conv.weight.data, conv.bias.data = w, torch.tensor(d[f'b{i}'])
    layers += [conv, torch.nn.ReLU()]
    i += 1
  head = torch.nn.Linear(d['wd'].shape[0], d['wd'].shape[1])
  head.weight.data, head.bias.data = torch.tensor(d['wd'].T.copy()), torch.tensor(d['bd'])
  return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), head)


def timed(f, repeats):
  f()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    f()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def time_net(net, x, t, seg, cfg):
  """images/s of each captum method in cfg['methods'] on ``net``."""
  per_eval = cfg['per_eval']
  runs = {
      'superpixel_ablation': lambda: FeatureAblation(net).attribute(
          x, target=t, feature_mask=seg, baselines=0.0, perturbations_per_eval=per_eval),
      'kernel_shap': lambda: KernelShap(net).attribute(
          x, target=t, feature_mask=seg, baselines=0.0, n_samples=cfg['shap_samples'],
          perturbations_per_eval=per_eval),
      'occlusion': lambda: Occlusion(net).attribute(
          x, target=t, sliding_window_shapes=(3, cfg['patch'], cfg['patch']),
          strides=(3, cfg['stride'], cfg['stride']), baselines=0.0,
          perturbations_per_eval=per_eval),
  }
  res = {}
  with torch.no_grad():
    for name in cfg['methods']:
      if name in runs:
        res[name] = len(x) / timed(runs[name], cfg['repeats'])
  return res


def main():
  d = np.load(sys.argv[1])
  cfg = json.loads(sys.argv[2])
  torch.set_num_threads(cfg.get('threads', torch.get_num_threads()))
  x = torch.tensor(d['x']).permute(0, 3, 1, 2).contiguous()
  seg = torch.tensor(d['seg']).long()[:, None].expand(-1, 3, -1, -1)  # [B, C, H, W]
  res = {'torch': torch.__version__, 'threads': torch.get_num_threads()}
  nets = {}
  if 'w0' in d:
    nets['small'] = (build(d).eval(), torch.tensor(d['t']).long(), d['out'])
  if face_resnet_torch.PREFIX + 'input_means' in d:
    nets['face'] = (face_resnet_torch.build(d), torch.tensor(d['face_t']).long(), d['face_out'])
  for key, (net, t, want) in nets.items():
    with torch.no_grad():
      err = float(np.abs(net(x).numpy() - want).max())
    res[key] = {'max_abs_output_diff_vs_jax': err, **time_net(net, x, t, seg, cfg)}
  print(json.dumps(res))


if __name__ == '__main__':
  main()
