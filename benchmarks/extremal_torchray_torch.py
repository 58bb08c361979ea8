"""The torchray side of benchmarks/extremal_torchray.py (peers venv; never imported by
gradejax): the toy patch net's extremal mask and torchray's images/s on the face ResNet.

  python benchmarks/extremal_torchray_torch.py IN.npz '{"steps": 5, "areas": [...]}'
"""
import json
import sys
import time

import numpy as np
import torch
from torchray.attribution.extremal_perturbation import extremal_perturbation

import face_resnet_torch


class PatchNet(torch.nn.Module):
  def forward(self, x):  # NCHW; the 8 x 8 patch at rows 8-15, cols 18-25
    s = x[:, 0, 8:16, 18:26].sum(dim=(1, 2))
    return torch.stack([s, -s], dim=1)


def main():
  d = np.load(sys.argv[1])
  cfg = json.loads(sys.argv[2])
  torch.set_num_threads(cfg['threads'])
  if 'defaults' in cfg:
    return defaults(d, cfg)
  truth = d['truth']
  mask, _ = extremal_perturbation(PatchNet(), torch.ones(1, 3, 32, 32), 0,
                                  areas=[float(truth.mean())], perturbation='fade',
                                  max_iter=800, step=1, sigma=2, jitter=False)
  m = mask[0, 0].numpy()
  toy_score = float((m[truth]).sum())  # fade: x * m with x = 1

  net = face_resnet_torch.build(d)
  x = torch.tensor(d['x']).permute(0, 3, 1, 2).contiguous()
  with torch.no_grad():
    ref = net(x).numpy()
  diff = float(np.abs(ref - d['face_out']).max())  # the same network on both sides
  run = lambda i: extremal_perturbation(net, x[i:i + 1], int(d['t'][i]), areas=cfg['areas'],
                                        max_iter=cfg['steps'])
  run(0)  # warm-up
  t0 = time.perf_counter()
  for i in range(len(x)):
    run(i)
  rate = len(x) / (time.perf_counter() - t0)
  print(json.dumps(dict(toy_mask=m.tolist(), toy_score=toy_score, rate=rate,
                        torch=torch.__version__, threads=torch.get_num_threads(),
                        max_abs_diff=diff)))


class NCHW(torch.nn.Module):
  """tcav_captum_torch's port of the demo classifier (NHWC) fed torchray's NCHW images."""

  def __init__(self, d):
    super().__init__()
    from tcav_captum_torch import DemoNet
    self.net = DemoNet(d)

  def forward(self, images):
    return self.net(images.permute(0, 2, 3, 1))


def defaults(d, cfg):
  """Each image at torchray's defaults (preserve, blur, step 7, sigma 21, jitter) with
  max_iter = each of cfg['defaults']: seconds per image and the masks [B, A, H, W]."""
  if 'head_w0' in d:  # the demo classifier (tcav_captum_torch's port), fed NCHW by torchray
    net = NCHW(d).eval()
  else:
    net = face_resnet_torch.build(d)
  x = torch.tensor(d['x']).permute(0, 3, 1, 2).contiguous()
  with torch.no_grad():
    diff = float(np.abs(net(x).numpy() - d['face_out']).max())
  areas = [float(a) for a in cfg['areas']]
  seconds, masks = {}, {}
  extremal_perturbation(net, x[:1], int(d['t'][0]), areas=areas, max_iter=2)  # warm-up
  for n in cfg['defaults']:
    t0 = time.perf_counter()
    out = [extremal_perturbation(net, x[i:i + 1], int(d['t'][i]), areas=areas,
                                 max_iter=n)[0][:, 0].numpy() for i in range(len(x))]
    seconds[str(n)] = (time.perf_counter() - t0) / len(x)
    masks[f'masks_{n}'] = np.stack(out)
  np.savez(cfg['out'], **masks)
  print(json.dumps(dict(seconds=seconds, torch=torch.__version__,
                        threads=torch.get_num_threads(), max_abs_diff=diff)))


if __name__ == '__main__':
  main()
