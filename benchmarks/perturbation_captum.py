"""The captum side of benchmarks/perturbation.py (run by it in a scratch venv with torch and
captum; never imported by gradejax). Reads the small conv net's weights, the images and the
segments from an .npz, checks the torch net reproduces the JAX outputs, times captum's
FeatureAblation / KernelShap / Occlusion and prints one JSON line.

  python benchmarks/perturbation_captum.py IN.npz '{"shap_samples": 256, ...}'
"""
import json
import statistics
import sys
import time

import numpy as np
import torch
from captum.attr import FeatureAblation, KernelShap, Occlusion


def build(d):
  layers, i = [], 0
  while f'w{i}' in d:
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


def main():
  d = np.load(sys.argv[1])
  cfg = json.loads(sys.argv[2])
  torch.set_num_threads(cfg.get('threads', torch.get_num_threads()))
  net = build(d).eval()
  x = torch.tensor(d['x']).permute(0, 3, 1, 2).contiguous()
  t = torch.tensor(d['t']).long()
  seg = torch.tensor(d['seg']).long()[:, None].expand(-1, 3, -1, -1)  # [B, C, H, W]
  with torch.no_grad():
    err = float(np.abs(net(x).numpy() - d['out']).max())
  b = len(x)
  per_eval = cfg['per_eval']
  res = {'max_abs_output_diff_vs_jax': err, 'torch': torch.__version__,
         'threads': torch.get_num_threads()}
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
  with torch.no_grad():
    for name in cfg['methods']:
      if name in runs:
        res[name] = b / timed(runs[name], cfg['repeats'])
  print(json.dumps(res))


if __name__ == '__main__':
  main()
