"""The attribution report's command (console script ``gradejax-visualize``):

  python -m gradejax.visualize --workdir DIR --methods saliency,grad_cam,occlusion \
      [--images 8 | --images id1,id2] [--layer level0] [--precision highest]

Loads the run (``runs.load_trained``, ``dataset.load_arrays``), runs the attribution battery
(gradejax.attribution.battery: the flags are its :class:`Options`) and renders it
(gradejax.report.attribution_report). The label-randomisation check's re-training is the
trainer's (``train.retrain_on_shuffled_labels``), injected here: the battery and the report
import no training code.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Callable, Sequence


from gradejax import distributed, errors, logs
from gradejax import options as optlib
from gradejax import progress  # noqa: F401 - defines --progress / --noprogress
from gradejax.attribution import battery
from gradejax.attribution.battery import DEFAULT_METHODS, Options, select  # noqa: F401
from gradejax.options import option
from gradejax.report import attribution_report, verdict


@dataclasses.dataclass
class Command(Options):
  """The ``visualize`` command: the battery's :class:`Options` plus the run and the
  retraining switch."""
  workdir: str | None = option(None, 'work directory of a training run', required=True)
  label_randomization: bool = option(True, 're-train the head on shuffled labels for the '
                                     'label-randomisation sanity check')


def make_report(workdir: str | pathlib.Path, module, variables, arrays: dict,
                data_dir: str | pathlib.Path | None = None, opts: Options = Options(),
                cue_mask_fn: battery.truth.CueMaskFn | None = None,
                retrain: Callable[[], Any] | None = None) -> pathlib.Path:
  """The battery on (module, variables, arrays) rendered into ``WORKDIR/report`` (returns
  ``index.html``'s path); ``retrain() -> params`` (trained on shuffled labels) enables the
  label-randomisation check. The run's ``eval/verdict.json`` (if any) says whether "What the
  network relies on" opens with a caveat: the network at chance, or photo conditions the
  answer."""
  v, _, _ = verdict.read(pathlib.Path(workdir) / 'eval')
  res = battery.run(module, variables, arrays, data_dir, opts, cue_mask_fn, retrain,
                    chance=battery.relies.chance_verdict(v),
                    conditions=battery.relies.conditions_verdict(v))
  return attribution_report.write(workdir, res)


def main(argv: Sequence[str]) -> None:
  del argv
  logs.quiet_libraries()
  distributed.initialize_from_flags()  # before any JAX work
  from gradejax.data import dataset  # the loading layer
  from gradejax.training import runs, train
  f = optlib.from_flags(Command)
  module, variables, config = runs.load_trained(f.workdir)
  data_dir = pathlib.Path(config.data_dir)
  # Images are decoded when used: the shown ones, and each process's share of the held-out
  # fold (a multi-host run reads no other image).
  arrays = dataset.load_arrays(data_dir, images='lazy')
  opts = optlib.narrow(Options, f, valid_fold=int(config.get('valid_fold', 0)))
  # Every process calls retrain (a multi-host run re-trains once, in process 0's child, and
  # every process reads the result: train.retrain_on_shuffled_labels).
  retrain = ((lambda: train.retrain_on_shuffled_labels(f.workdir, config, f.seed))
             if f.label_randomization else None)
  path = make_report(f.workdir, module, variables, arrays, data_dir, opts, retrain=retrain)
  if distributed.is_main():
    print(f'wrote {path} (a local file with students\' photos: do not share it)')


def command() -> None:
  """The ``gradejax.visualize`` command: defines its flags, parses argv, runs :func:`main`."""
  distributed.define_flags()
  optlib.define_flags(Command)
  errors.run(main, output_flag='workdir')


if __name__ == '__main__':
  command()
