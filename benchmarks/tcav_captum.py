"""TCAV, ours beside captum's ``captum.concept.TCAV``, in one run: the same CAVs and the same
experimental sets ([concept, counterexample set i], [random concept j, counterexample set i]),
so the scores must agree exactly; and images/s on the demo's classifier.

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu /work/main/.venv/bin/python benchmarks/tcav_captum.py \
      [--workdir /tmp/h26-ws/runs/demo --concepts /tmp/h26-concepts] [--runs 20] \
      [--torch_python /work/peers/.venv/bin/python]

1. Toy: a net whose logit is ``feat . u`` at a tap (the flattened 4 x 4 x 3 image): concept
   'u' = random images shifted along u, 'unrelated' = random images; 20 counterexample sets,
   10 random concepts (tcav.design's split of 330 random images). Our CAVs
   (``tcav.train_cav``) are handed to captum through a ``Classifier`` that returns them, so
   captum computes its own layer gradients (LayerGradientXActivation without the activation,
   its default) and sign-count scores from them.
2. With ``--workdir`` and ``--concepts`` (``gradejax.data.concepts.write_concept_folders``):
   the trained demo classifier (face ResNet + head, ported to torch with the same params) at
   the tap ``extractor/descriptor`` (the head's input), class 1, the held-out fold's images
   predicted as class 1 as the class examples; scores side by side and images/s (concept,
   random and class images all counted) of ours and captum's, compile time excluded.
Differences by design: captum's default CAV is scikit-learn's SGDClassifier (hinge, not
installed here); ours a logistic regression. Fed the same CAV, the scores are the same. captum
computes scores only: the split of the random folder into random concepts and a counterexample
pool, and the test (the concept's mean among the random concepts' means), are ours.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import face_resnet_torch  # noqa: E402
from gradejax import nets  # noqa: E402
from gradejax.attribution import tcav  # noqa: E402

WORKDIR = flags.DEFINE_string('workdir', '', 'a trained demo run (part 2)')
CONCEPTS = flags.DEFINE_string('concepts', '', 'concept folders (part 2)')
RUNS = flags.DEFINE_integer('runs', 20, 'random runs')
LAYER = flags.DEFINE_string('layer', 'extractor/descriptor', 'tap of part 2')
TORCH = flags.DEFINE_string('torch_python', '/work/peers/.venv/bin/python', 'peers venv python')

D = 48
U = np.random.default_rng(1).normal(size=D).astype(np.float32)
U /= np.linalg.norm(U)


class LinearTapNet(nn.Module):
  @nn.compact
  def __call__(self, images, *, relu=nn.relu):
    f = nets.tap(self, 'feat', images.reshape(images.shape[0], -1))
    s = f @ jnp.asarray(U)
    return nets.tap(self, 'logits', jnp.stack([s, -s], axis=1))


def _sets(concepts: dict, rand_acts: np.ndarray, runs: int, key) -> tuple[dict, dict]:
  """Our CAVs of every experimental set, one pair at a time (tcav.train_cav), with the same
  draws as tcav.tcav_classes: [concept, counterexample set i] and [random concept j,
  counterexample set i]; and the index arrays of the split."""
  size = min(len(a) for a in concepts.values())
  assert all(len(a) == size for a in concepts.values()), 'give concepts of one size'
  d = tcav.design(len(rand_acts), size, jax.random.split(key)[0], runs=runs)
  cavs = {}
  for name, acts in concepts.items():
    for i in range(runs):
      cavs[f'{name}|{i}'] = tcav.train_cav(acts, rand_acts[d.counter_sets[i]])[0]
  for j, block in enumerate(d.random_concepts):
    for i in range(runs):
      cavs[f'rc{j}|{i}'] = tcav.train_cav(rand_acts[block], rand_acts[d.counter_sets[i]])[0]
  return cavs, dict(counter_sets=d.counter_sets, random_concepts=d.random_concepts)


def toy(runs: int) -> dict:
  rng = np.random.default_rng(2)
  rand = rng.normal(size=(330, 4, 4, 3)).astype(np.float32)
  concept = (rng.normal(size=(30, D)) + 3 * U).reshape(30, 4, 4, 3).astype(np.float32)
  unrelated = rng.normal(size=(30, 4, 4, 3)).astype(np.float32)
  examples = rng.normal(size=(40, 4, 4, 3)).astype(np.float32)
  m = LinearTapNet()
  fn = nets.bind(m, m.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3))))
  key = jax.random.key(0)
  ours = tcav.run_tcav(fn, {'u': concept, 'unrelated': unrelated}, rand, examples, 0,
                       layer='feat', key=key, runs=runs, batch=16)
  acts = lambda x: x.reshape(len(x), -1)
  cavs, sets = _sets({'u': acts(concept), 'unrelated': acts(unrelated)}, acts(rand), runs, key)
  # The one-pair CAVs reproduce tcav_classes' batched ones: the same scores per run.
  g = tcav.layer_gradients(fn, examples, 0, 'feat', batch=16)
  for t in ours:
    np.testing.assert_array_equal(
        tcav.tcav_scores(g, np.stack([cavs[f'{t.concept}|{i}'] for i in range(runs)])), t.scores)
  m = len(sets['random_concepts'])
  np.testing.assert_allclose(ours[0].null, [tcav.tcav_scores(g, np.stack(
      [cavs[f'rc{j}|{i}'] for i in range(runs)])).mean() for j in range(m)])
  return dict(ours={t.concept: t.scores.tolist() for t in ours},
              null=ours[0].null.tolist(), cavs=cavs, examples=examples,
              concept=concept, unrelated=unrelated, rand=rand, u=U,
              p={t.concept: t.p for t in ours}, **sets)


def main(argv):
  del argv
  t = toy(RUNS.value)
  arrays = {'toy_' + k: np.asarray(v) for k, v in t.items() if k in (
      'examples', 'concept', 'unrelated', 'rand', 'u', 'counter_sets', 'random_concepts')}
  arrays.update({'toy_cav_' + k: v for k, v in t['cavs'].items()})
  part2 = bool(WORKDIR.value and CONCEPTS.value)
  ours_rate, ours2 = None, {}
  if part2:
    from gradejax.data import dataset
    from gradejax.attribution.battery import maps as maps_lib
    from gradejax.training import runs as runlib
    module, variables, config = runlib.load_trained(WORKDIR.value)
    fn = nets.bind(module, variables)
    data = dataset.load_arrays(config.data_dir)
    fold = np.nonzero(data['fold'] == int(config.valid_fold))[0]
    x = data['images'][fold].astype(np.float32) / 255
    pred = maps_lib.predicted(fn, x, 16)
    examples = x[pred == 1]
    folders = tcav.read_concept_folders(CONCEPTS.value)
    rand = folders.pop('random')
    key = jax.random.key(0)
    kw = dict(layer=LAYER.value, key=key, runs=RUNS.value, batch=16, precision='default')
    tcav.run_tcav(fn, {k: v[:16] for k, v in folders.items()}, rand[:tcav.random_needed(16)],
                  examples[:16], 1,
                  **dict(kw, runs=2))  # compile the shapes
    t0 = time.perf_counter()
    res = tcav.run_tcav(fn, folders, rand, examples, 1, **kw)
    secs = time.perf_counter() - t0
    n_img = sum(len(v) for v in folders.values()) + len(rand) + len(examples)
    ours_rate = n_img / secs
    ours2 = {r.concept: dict(score=r.score, p=r.p_holm, scores=r.scores.tolist()) for r in res}
    ours2_null = res[0].null
    acts = {k: tcav.activations(fn, v, LAYER.value, 16, 'default') for k, v in folders.items()}
    cavs, sets = _sets(acts, tcav.activations(fn, rand, LAYER.value, 16, 'default'),
                       RUNS.value, key)
    arrays.update({'demo_cav_' + k: v for k, v in cavs.items()})
    arrays.update(demo_counter_sets=sets['counter_sets'],
                  demo_random_concepts=sets['random_concepts'], demo_examples=examples,
                  demo_rand=rand,
                  **{'demo_concept_' + k: v for k, v in folders.items()})
    arrays.update(face_resnet_torch.flatten_classifier(variables, module.input_means))
    with jax.default_matmul_precision('highest'):
      arrays['demo_logits'] = np.asarray(fn(jnp.asarray(examples[:4]))[0])
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'in.npz')
    np.savez(path, **arrays)
    script = os.path.join(os.path.dirname(__file__), 'tcav_captum_torch.py')
    cfg = dict(runs=RUNS.value, threads=os.cpu_count(), part2=part2, tmp=tmp)
    res = subprocess.run([TORCH.value, script, path, json.dumps(cfg)], capture_output=True,
                         text=True, check=False)
  if res.returncode != 0:
    sys.exit(f'captum side failed: {res.stderr[-3000:]}')
  theirs = json.loads(res.stdout.strip().splitlines()[-1])
  for name in ('u', 'unrelated'):
    a, b = np.array(t['ours'][name]), np.array(theirs['toy'][name])
    print(f'toy concept {name!r}: ours TCAV {a.mean():.3f} (p {t["p"][name]:.1e}), captum '
          f'{b.mean():.3f}; max |difference| over {len(a)} runs {np.abs(a - b).max():.3g}')
  a, b = np.array(t['null']), np.array(theirs['toy']['null']).mean(axis=1)
  print(f'toy random concepts ({len(a)}, mean score each): ours {np.round(a, 2)}, max |diff| '
        f'to captum {np.abs(a - b).max():.3g}')
  if part2:
    print(f'demo classifier (torch port reproduces our logits to {theirs["logit_diff"]:.1e}), '
          f'tap {LAYER.value}, class 1, {RUNS.value} runs:')
    for name, r in ours2.items():
      b = np.array(theirs['demo'][name])
      print(f'  concept {name!r}: ours TCAV {r["score"]:.3f} (Holm p {r["p"]:.1e}), captum '
            f'{b.mean():.3f}, max |diff| {np.abs(np.array(r["scores"]) - b).max():.3g}')
    b = np.array(theirs['demo']['null']).mean(axis=1)
    print(f'  random concepts ({len(b)}): max |diff| of their mean scores '
          f'{np.abs(ours2_null - b).max():.3g}')
    print(f'  images/s (concept + random + class images, {RUNS.value} runs): ours '
          f'{ours_rate:.2f}, captum {theirs["rate"]:.2f} (torch {theirs["torch"]}, '
          f'{theirs["threads"]} threads): {ours_rate / theirs["rate"]:.2f}x')


if __name__ == '__main__':
  app.run(main)
