"""TCAV under K PRNG keys (K full draws of counterexample sets and random concepts) at the
given taps, on a trained run, with the report's design (held-out fold, predicted class, <=
class_images per class): how often each concept comes out Holm-significant. The check behind
the report's default tap and score (benchmarks/RESULTS.md, session 11).

  SCORE=contrast|logit JAX_PLATFORMS=cpu .venv/bin/python benchmarks/tcav_keys.py \
      RUN DATA CONCEPTS extractor/level2,extractor/descriptor [K=10]
"""
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import numpy as np, jax
from gradejax import nets
from gradejax.attribution import tcav
from gradejax.attribution.battery import relies, maps as maps_lib, config as cfg_lib
from gradejax.data import dataset
from gradejax.training import runs
run, data, concepts, layers = sys.argv[1:5]
K = int(sys.argv[5]) if len(sys.argv) > 5 else 10
module, variables, config = runs.load_trained(run)
arrays = dataset.load_arrays(data)
fn = nets.bind(module, variables)
cfg = cfg_lib.Options(valid_fold=int(config.valid_fold)).config()
rows = relies.fold_rows(arrays, cfg.localisation.valid_fold)
x = np.asarray(arrays['images'][rows]).astype(np.float32) / 255
targets = maps_lib.predicted(fn, x, 8)
c = cfg.relies
folders = tcav.read_concept_folders(concepts, size=x.shape[1])
random = folders.pop('random')
classes = {int(k): x[np.nonzero(targets == k)[0][:c.class_images]] for k in np.unique(targets)}
print({k: len(v) for k, v in classes.items()}, {k: len(v) for k, v in folders.items()}, len(random))
for layer in layers.split(','):
  t0 = time.time()
  acts = {n: tcav.activations(fn, im, layer, 32, cfg.precision) for n, im in folders.items()}
  rand = tcav.activations(fn, random, layer, 32, cfg.precision)
  grads = {k: tcav.layer_gradients(fn, im, k, layer, batch=32, precision=cfg.precision, score=os.environ.get('SCORE', 'logit'))
           for k, im in classes.items()}
  print(layer, f'{time.time() - t0:.1f} s acts+grads')
  sig = {}
  for key in range(K):
    found = tcav.tcav_classes(acts, rand, grads, key=jax.random.key(key), runs=c.runs)
    line = []
    for k in sorted(found):
      for t in found[k]:
        line.append(f'{k}:{t.concept} {t.score:.2f} p{t.p_holm:.3f}')
        if t.p_holm < 0.05:
          sig[(k, t.concept)] = sig.get((k, t.concept), 0) + 1
    print(' key', key, ' | '.join(line), flush=True)
  print(layer, 'significant (class, concept): keys', sig, flush=True)
