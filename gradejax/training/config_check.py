"""A run config's values checked before any data is read (:func:`validate`).

Each rule names the field (dotted, as on the command line), the value and what is allowed, in
one line (:class:`gradejax.errors.ConfigError`), so ``--config.steps=-5`` or
``--config.optimizer=adm`` stop in a second instead of after the embedding. Keys that
``configs/default.py`` does not define are named as unknown; fields the default defines but no
rule here knows are checked for their type only (a field added to the default later is then
still checked for its type).
"""
from __future__ import annotations

import ast
import pathlib
import runpy
from typing import Any, Callable

import ml_collections

from gradejax.errors import ConfigError

# The taps a head can read (gradejax.nets.facenet), globally average pooled.
TAPS = ('descriptor', 'pooled', 'stem', 'level0', 'level1', 'level2', 'level3', 'level4')
CHOICES: dict[str, tuple] = {
    'optimizer': ('adam', 'sgd'),
    'schedule': ('cosine', 'constant'),
    'imbalance': ('weighted', 'oversample', 'none'),
    'metric': ('roc_auc', 'balanced_accuracy', 'mcc'),
    'head_input': TAPS,
    'unfreeze': ('', 'level0', 'level1', 'level2', 'level3', 'level4'),
}
# (lowest, highest, lowest allowed itself, highest allowed itself); None: unbounded.
RANGES: dict[str, tuple] = {
    'steps': (0, None, False, None), 'save_every': (0, None, False, None),
    'log_every': (0, None, False, None), 'batch_size': (0, None, False, None),
    'num_views': (0, None, True, None), 'warmup_steps': (0, None, True, None),
    'learning_rate': (0, None, False, None), 'weight_decay': (0, None, True, None),
    'unfreeze_lr_scale': (0, None, False, None),
    'head.dropout': (0, 1, True, False),
    'cv_folds': (2, None, True, None), 'cv_repeats': (1, None, True, None),
    'cv_head.steps': (0, None, False, None), 'cv_head.learning_rate': (0, None, False, None),
    'cv_head.weight_decay': (0, None, True, None),
    'num_permutations': (1, None, True, None), 'permutation_chunk': (0, None, False, None),
    'bootstrap': (1, None, True, None), 'alpha': (0, 1, False, False),
    'power': (0, 1, False, False), 'baseline_ridge': (0, None, True, None),
    'blur_sigma': (0, None, False, None), 'valid_fold': (-1, None, True, None),
    'seed': (0, None, True, None), 'shuffle_labels_seed': (-1, None, True, None),
    'min_gain': (0, 1, True, False),
}
INTEGERS = ('steps', 'save_every', 'log_every', 'batch_size', 'num_views', 'warmup_steps',
            'cv_folds', 'cv_repeats', 'cv_head.steps', 'num_permutations', 'permutation_chunk',
            'bootstrap', 'valid_fold', 'seed', 'shuffle_labels_seed', 'stop_after_steps')
WIDTHS = ('head.widths', 'cv_head.widths')
# Written by train into WORKDIR/config.json beside the config (runs.write_config).
DERIVED = ('num_classes', 'class_names', 'input_means', 'feature_dim', 'data_manifest_sha256')


def default_config() -> ml_collections.ConfigDict | None:
  """``configs/default.py`` of this checkout (None where gradejax runs without it)."""
  path = pathlib.Path(__file__).resolve().parents[2] / 'configs' / 'default.py'
  if not path.is_file():
    return None
  return runpy.run_path(str(path))['get_config']()


def parse_widths(value: Any, field: str = 'head.widths') -> tuple[int, ...]:
  """Layer widths from a tuple/list of ints or a string such as ``'(32,)'``, ``'32,16'``,
  ``'32'`` or ``''``; ConfigError naming ``field`` otherwise."""
  v = value
  if isinstance(v, str):
    try:
      v = ast.literal_eval(v) if v.strip() else ()
    except (ValueError, SyntaxError):
      v = None
  if isinstance(v, (tuple, list)) and len(v) == 1 and isinstance(v[0], str):
    return parse_widths(v[0], field)  # ml_collections turns 'abc' into ('abc',)
  if isinstance(v, int) and not isinstance(v, bool):
    v = (v,)
  if (not isinstance(v, (tuple, list)) or
      not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in v)):
    raise ConfigError(f'config.{field} = {value!r} is not a list of layer widths: pass positive '
                      f'integers, e.g. --config.{field}="(64,)" or "(64, 32)" (or "()" for none).')
  return tuple(int(w) for w in v)


def _flat(config) -> dict[str, Any]:
  d = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
  out: dict[str, Any] = {}

  def walk(prefix, node):
    for k, v in node.items():
      if isinstance(v, dict) and v:
        walk(f'{prefix}{k}.', v)
      else:
        out[f'{prefix}{k}'] = v
  walk('', d)
  return out


def _range_error(key: str, v, rule: tuple) -> str | None:
  lo, hi, lo_ok, hi_ok = rule
  bad = ((lo is not None and (v < lo or (v == lo and not lo_ok))) or
         (hi is not None and (v > hi or (v == hi and not hi_ok))))
  if not bad:
    return None
  lo_s = '' if lo is None else (f'>= {lo}' if lo_ok else f'> {lo}')
  hi_s = '' if hi is None else (f'<= {hi}' if hi_ok else f'< {hi}')
  return (f'config.{key} = {v!r} is out of range: set --config.{key} to a value '
          f'{" and ".join(filter(None, [lo_s, hi_s]))}.')


def _type_name(v) -> str:
  return {bool: 'true/false', int: 'an integer', float: 'a number', str: 'a string'}.get(
      type(v), type(v).__name__)


def validate(config, reference: ml_collections.ConfigDict | None | Callable = default_config
             ) -> None:
  """Raises :class:`ConfigError` (one line: field, value, what is allowed) for the first bad
  value of ``config``; returns None when every value is allowed.

  ``reference``: the config that defines the valid keys and their types (default:
  ``configs/default.py``; None: no unknown-key or type check beyond the rules here).
  """
  ref = reference() if callable(reference) else reference
  flat = _flat(config)
  ref_flat = _flat(ref) if ref is not None else {}
  if ref is not None:
    known = set(ref_flat) | set(RANGES) | set(CHOICES) | set(WIDTHS) | set(DERIVED)
    for key in flat:
      if key not in known and not any(k.startswith(key + '.') for k in known):
        raise ConfigError(f'Unknown config key {key!r}: configs/default.py does not define it '
                          f'(a typo?); remove it or see configs/default.py for the valid keys.')
  for key, v in flat.items():
    want = ref_flat.get(key)
    if key in WIDTHS:
      parse_widths(v, key)
    elif key in INTEGERS:
      if not isinstance(v, int) or isinstance(v, bool):
        raise ConfigError(f'config.{key} = {v!r} must be an integer.')
    elif key == 'pivot':
      if v is not None and v != 'median' and (isinstance(v, bool) or
                                              not isinstance(v, (int, float))):
        raise ConfigError(f"config.pivot = {v!r} must be 'median', a grade (a number) or unset "
                          f'(the labels prepare wrote).')
    elif want is not None and key not in DERIVED:
      numeric = isinstance(want, (int, float)) and not isinstance(want, bool)
      ok = (isinstance(v, (int, float)) and not isinstance(v, bool) if numeric
            else isinstance(v, type(want)) or (isinstance(want, (tuple, list))
                                               and isinstance(v, (tuple, list))))
      if not ok:
        raise ConfigError(f'config.{key} = {v!r} must be {_type_name(want)} (as in '
                          f'configs/default.py).')
    if key in CHOICES and v not in CHOICES[key]:
      raise ConfigError(f'config.{key} = {v!r} is not one of '
                        f'{", ".join(repr(c) for c in CHOICES[key])}: set --config.{key} to one.')
    if key in RANGES and isinstance(v, (int, float)) and not isinstance(v, bool):
      msg = _range_error(key, v, RANGES[key])
      if msg:
        raise ConfigError(msg)
  if flat.get('unfreeze') and flat.get('fast_path', False):
    raise ConfigError(f"config.unfreeze = {flat['unfreeze']!r} trains extractor layers, which "
                      'the cached features cannot: add --config.fast_path=False.')


def normalise(config) -> None:
  """Parses string layer widths in place (``--config.head.widths='(32,)'`` can arrive as a
  string or as a tuple of one string from the command line)."""
  for key in WIDTHS:
    section, name = key.split('.')
    if section in config and name in config[section]:
      config[section][name] = parse_widths(config[section][name], key)
