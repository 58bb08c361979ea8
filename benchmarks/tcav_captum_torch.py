"""The captum side of benchmarks/tcav_captum.py (peers venv; never imported by gradejax):
captum's TCAV fed our CAVs through a Classifier, on the toy net and the demo classifier.

  python benchmarks/tcav_captum_torch.py IN.npz '{"runs": 20, "part2": false, ...}'
"""
import json
import os
import sys
import time

import numpy as np
import torch
from captum.concept import TCAV, Concept
from captum.concept._utils.classifier import Classifier

import face_resnet_torch


class GivenCAVs(Classifier):
  """Returns our CAV for the experimental set whose two concept ids it is trained on."""

  def __init__(self, cavs: dict, names: dict):
    self.cavs, self.names = cavs, names
    self._w, self._classes = None, None

  def train_and_eval(self, dataloader, **kwargs):
    ys = torch.cat([y for _, y in dataloader]).unique().tolist()
    cid, rid = min(ys), max(ys)  # concepts have the lower ids, random sets the higher
    cav = torch.tensor(self.cavs[f'{self.names[cid]}|{rid - 10_000}'])
    self._w, self._classes = torch.stack([cav, -cav]), [cid, rid]
    return {'accs': torch.tensor(1.0)}

  def weights(self):
    return self._w

  def classes(self):
    return self._classes


class ToyNet(torch.nn.Module):
  def __init__(self, u):
    super().__init__()
    self.feat = torch.nn.Identity()
    self.u = torch.tensor(u)

  def forward(self, x):  # NHWC, flattened as on the JAX side
    f = self.feat(x.reshape(x.shape[0], -1))
    s = f @ self.u
    return torch.stack([s, -s], dim=1)


class DemoNet(torch.nn.Module):
  """The demo classifier: face ResNet descriptor -> standardise -> dense, relu -> dense."""

  def __init__(self, d):
    super().__init__()
    self.face = face_resnet_torch.build(d)
    self.feat = torch.nn.Identity()
    self.p = {k: torch.tensor(d[k]) for k in ('head_mean', 'head_std', 'head_w0', 'head_b0',
                                               'head_w1', 'head_b1')}

  def forward(self, x):  # NHWC in [0, 1]
    f = self.feat(self.face(x.permute(0, 3, 1, 2)))
    h = torch.relu(((f - self.p['head_mean']) / self.p['head_std']) @ self.p['head_w0']
                   + self.p['head_b0'])
    return h @ self.p['head_w1'] + self.p['head_b1']


def scores(net, layer, concepts: dict, rand: np.ndarray, counter_sets: np.ndarray,
           random_concepts: np.ndarray, examples, cavs, runs, target, save):
  """captum's scores of the experimental sets [concept, counter i] and [random concept j,
  counter i]: concept name -> [runs] and 'null' -> [M][runs]."""
  names, cons = {}, {}
  blocks = {f'rc{j}': rand[b] for j, b in enumerate(random_concepts)}
  for j, (name, x) in enumerate(list(concepts.items()) + list(blocks.items())):
    names[j] = name
    cons[name] = Concept(j, name, [torch.tensor(x)])
  rnd = [Concept(10_000 + i, f'random{i}', [torch.tensor(rand[counter_sets[i]])])
         for i in range(runs)]
  exp = [[cons[n], rnd[i]] for n in list(concepts) + list(blocks) for i in range(runs)]
  tc = TCAV(net, layers=[layer], classifier=GivenCAVs(cavs, names), save_path=save)
  out = tc.interpret(torch.tensor(examples), experimental_sets=exp, target=target)
  res = {n: [] for n in list(concepts) + list(blocks)}
  for e in exp:
    key = '-'.join(str(c.id) for c in e)
    res[names[e[0].id]].append(float(out[key][layer]['sign_count'][0]))
  res['null'] = [res.pop(n) for n in blocks]
  return res


def main():
  d = np.load(sys.argv[1])
  cfg = json.loads(sys.argv[2])
  torch.set_num_threads(cfg['threads'])
  runs = cfg['runs']
  cav = lambda prefix: {k[len(prefix):]: d[k] for k in d.files if k.startswith(prefix)}
  toy = scores(ToyNet(d['toy_u']), 'feat', {'u': d['toy_concept'], 'unrelated': d['toy_unrelated']},
               d['toy_rand'], d['toy_counter_sets'], d['toy_random_concepts'], d['toy_examples'],
               cav('toy_cav_'), runs, 0,
               os.path.join(cfg['tmp'], 'cav_toy'))
  out = dict(toy=toy, torch=torch.__version__, threads=torch.get_num_threads())
  if cfg['part2']:
    net = DemoNet(d).eval()
    with torch.no_grad():
      out['logit_diff'] = float(np.abs(net(torch.tensor(d['demo_examples'][:4])).numpy()
                                       - d['demo_logits']).max())
    concepts = {k[len('demo_concept_'):]: d[k] for k in d.files if k.startswith('demo_concept_')}
    t0 = time.perf_counter()
    out['demo'] = scores(net, 'feat', concepts, d['demo_rand'], d['demo_counter_sets'],
                         d['demo_random_concepts'], d['demo_examples'], cav('demo_cav_'), runs, 1,
                         os.path.join(cfg['tmp'], 'cav_demo'))
    n_img = sum(len(v) for v in concepts.values()) + len(d['demo_rand']) + len(d['demo_examples'])
    out['rate'] = n_img / (time.perf_counter() - t0)
  print(json.dumps(out))


if __name__ == '__main__':
  main()
