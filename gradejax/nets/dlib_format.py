"""NumPy reader for dlib's serialized DNN files (``dlib_face_recognition_resnet_model_v1.dat``).

The byte layout is described in ``../shared/reference/dlib_resnet_format.md`` (from dlib's
``serialize.h``, ``dnn/core.h``, ``dnn/layers.h``). In short: an ``add_loss_layer`` version and
the loss record, then a run of wrapper version ints (outermost first; ``2`` = add_layer,
``1`` = tag/skip, the innermost add_layer ``3`` or ``2``), the input layer, then one *details*
record per add_layer, input side first. Parameter tensors are raw little-endian float32; the
few scalar floats use dlib's ``float_details`` (mantissa int, exponent int).

:func:`read_dlib_net` parses any chain of the supported layer records; :func:`read_face_resnet`
also checks that the file is the 150x150 face ResNet that :mod:`gradejax.facenet` implements.
Every failure is a :class:`DlibFormatError` naming the file, the byte offset and (past the
header) the index of the details record.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
from typing import Any

import numpy as np

INPUT_LAYERS = ('input_rgb_image_sized', 'input_rgb_image')

# The face ResNet, input side first: (level name, channels, blocks, first block strided-down).
FACE_RESNET_LEVELS = (
    ('level4', 32, 3, False),
    ('level3', 64, 4, True),
    ('level2', 128, 3, True),
    ('level1', 256, 3, True),
    ('level0', 256, 1, True),
)
FACE_RESNET_CHIP_SIZE = 150
FACE_RESNET_DESCRIPTOR_DIM = 128


class DlibFormatError(ValueError):
  """The file is not a readable dlib network (or not the expected one)."""


@dataclasses.dataclass(frozen=True)
class Layer:
  """One add_layer's details record.

  kind: ``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``, ``add_prev`` or ``fc``
    (``bn_con2``/``bn_fc2`` records are folded into ``affine``).
  version: the record's version string as stored (``con_4``, ``affine_2``, ``bn_con2``, ...).
  offset: byte offset of the record's version string in the file.
  attrs: hyper-parameters, e.g. ``num_filters``, ``kernel`` (nr, nc), ``stride`` (y, x),
    ``padding`` (y, x), ``mode``, ``num_inputs``, ``num_outputs``, ``has_bias``, ``disabled``.
  params: float32 arrays. con: ``filters`` [O, I, kh, kw] (dlib's OIHW, cross-correlation),
    ``biases`` [O]; affine: ``gamma``, ``beta`` (per channel [C] in CONV mode, per element in
    FC mode); fc: ``weights`` [num_inputs, num_outputs] (y = x_flat @ W), ``biases`` [num_outputs].
  state_flags: the add_layer's training-state bools that follow the record
    (this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled).
  """
  kind: str
  version: str
  offset: int
  attrs: dict[str, Any]
  params: dict[str, np.ndarray]
  state_flags: tuple[bool, ...] = ()

  @property
  def num_params(self) -> int:
    return int(sum(p.size for p in self.params.values()))


@dataclasses.dataclass(frozen=True)
class DlibNet:
  """A parsed dlib network.

  layers: details records, input side first (the order they run in).
  wrapper_versions: the header's run of version ints, outermost wrapper first.
  input_means: [3] float64, per-channel means (R, G, B) subtracted by the input layer, in 0..255.
  input_size: (rows, cols) of the sized input layer, or None.
  loss: loss record name; margin and dist_thresh for ``loss_metric_*`` (else None).
  """
  path: str
  file_size: int
  loss: str
  margin: float | None
  dist_thresh: float | None
  wrapper_versions: tuple[int, ...]
  input_layer: str
  input_means: np.ndarray
  input_size: tuple[int, int] | None
  layers: tuple[Layer, ...]

  @property
  def num_params(self) -> int:
    return sum(layer.num_params for layer in self.layers)

  def count(self, kind: str) -> int:
    return sum(layer.kind == kind for layer in self.layers)


class _Reader:
  """Cursor over the file's bytes; every error names file, offset and current record."""

  def __init__(self, buf: bytes, path: str):
    self.buf = buf
    self.path = path
    self.pos = 0
    self.record: int | None = None

  def fail(self, msg: str, pos: int | None = None) -> DlibFormatError:
    where = f'byte offset {self.pos if pos is None else pos}'
    if self.record is not None:
      where += f', layer details record {self.record}'
    return DlibFormatError(f'{self.path}: {where}: {msg}')

  def take(self, n: int, what: str) -> bytes:
    if self.pos + n > len(self.buf):
      raise self.fail(f'file ends while reading {what} ({n} bytes needed, '
                      f'{len(self.buf) - self.pos} left): truncated or not a dlib network file')
    out = self.buf[self.pos:self.pos + n]
    self.pos += n
    return out

  def int(self, what: str = 'an int') -> int:
    start = self.pos
    c = self.take(1, what)[0]
    n = c & 0x0F
    if c & 0x70 or n == 0 or n > 8:
      raise self.fail(f'bad integer control byte 0x{c:02x} while reading {what}: not a dlib '
                      'network file (or the file is corrupt)', start)
    value = int.from_bytes(self.take(n, what), 'little')
    return -value if c & 0x80 else value

  def bool(self, what: str = 'a bool') -> bool:
    start = self.pos
    b = self.take(1, what)
    if b not in (b'0', b'1'):
      raise self.fail(f'expected a bool (ASCII 0/1) for {what}, got byte 0x{b[0]:02x}', start)
    return b == b'1'

  def float(self, what: str = 'a float') -> float:
    if self.pos < len(self.buf) and self.buf[self.pos] & 0x70:
      raise self.fail(f'{what} is in dlib\'s legacy ASCII float format, which is not supported')
    mantissa = self.int(f'{what} (mantissa)')
    exponent = self.int(f'{what} (exponent)')
    special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
    if exponent in special:
      return special[exponent]
    return math.ldexp(mantissa, exponent)

  def string(self, what: str = 'a string', limit: int = 1 << 16) -> str:
    start = self.pos
    n = self.int(f'the length of {what}')
    if not 0 <= n <= limit:
      raise self.fail(f'implausible length {n} for {what}', start)
    raw = self.take(n, what)
    try:
      return raw.decode('ascii')
    except UnicodeDecodeError:
      raise self.fail(f'{what} is not ASCII ({raw[:16]!r}...)', start) from None

  def peek_string(self) -> str | None:
    """The string at the cursor if one fits there, without moving (None otherwise)."""
    pos = self.pos
    try:
      return self.string(limit=64)
    except DlibFormatError:
      return None
    finally:
      self.pos = pos

  def shape4(self, what: str) -> tuple[int, int, int, int]:
    shape = tuple(self.int(f'{what} dimension {i}') for i in range(4))
    if min(shape) < 0:
      raise self.fail(f'negative dimension in {what}: {shape}')
    return shape  # type: ignore[return-value]

  def tensor(self, what: str) -> np.ndarray:
    start = self.pos
    version = self.int(f'{what} version')
    if version != 2:
      raise self.fail(f'{what}: tensor version {version}, expected 2', start)
    shape = self.shape4(what)
    count = math.prod(shape)
    data = self.take(4 * count, f'{what} data ({count} float32)')
    return np.frombuffer(data, '<f4').astype(np.float32).reshape(shape)

  def alias(self, what: str) -> tuple[int, int, int, int]:
    start = self.pos
    version = self.int(f'{what} version')
    if version != 1:
      raise self.fail(f'{what}: alias_tensor version {version}, expected 1', start)
    return self.shape4(what)


def _split(r: _Reader, params: np.ndarray, parts: list[tuple[str, tuple[int, ...]]],
           what: str) -> dict[str, np.ndarray]:
  flat = params.reshape(-1)
  need = sum(math.prod(s) for _, s in parts)
  if flat.size != need:
    raise r.fail(f'{what}: params tensor has {flat.size} floats but the shapes stored after it '
                 f'need {need} ({parts})')
  out, i = {}, 0
  for name, shape in parts:
    n = math.prod(shape)
    out[name] = flat[i:i + n].reshape(shape)
    i += n
  return out


def _multipliers(r: _Reader, what: str) -> tuple[float, ...]:
  # Training-time learning-rate / weight-decay multipliers; kept so a file can be re-written.
  return tuple(r.float(f'{what} {name}')
               for name in ('lr_mult', 'wd_mult', 'bias_lr_mult', 'bias_wd_mult'))


def _con(r: _Reader, version: str) -> tuple[dict, dict]:
  params = r.tensor('con params')
  num_filters = r.int('con num_filters')
  kernel = (r.int('con nr'), r.int('con nc'))
  stride = (r.int('con stride_y'), r.int('con stride_x'))
  padding = (r.int('con padding_y'), r.int('con padding_x'))
  filters = r.alias('con filters')
  biases = r.alias('con biases')
  mult = _multipliers(r, 'con')
  use_bias = r.bool('con use_bias') if version in ('con_5', 'con_6') else True
  use_relu = r.bool('con use_relu') if version == 'con_6' else False
  if filters[0] != num_filters or filters[2:] != kernel:
    raise r.fail(f'con filters shape {filters} disagrees with num_filters={num_filters}, '
                 f'kernel={kernel}')
  parts = [('filters', filters)] + ([('biases', (biases[1],))] if use_bias else [])
  attrs = dict(num_filters=num_filters, in_channels=filters[1], kernel=kernel, stride=stride,
               padding=padding, has_bias=use_bias, use_relu=use_relu, multipliers=mult)
  return attrs, _split(r, params, parts, 'con')


def _affine(r: _Reader, version: str) -> tuple[dict, dict]:
  params = r.tensor('affine params')
  gamma = r.alias('affine gamma')
  beta = r.alias('affine beta')
  mode = r.int('affine mode')
  disabled = r.bool('affine disabled') if version == 'affine_2' else False
  p = _split(r, params, [('gamma', gamma), ('beta', beta)], 'affine')
  return _affine_attrs(r, mode, disabled), _squeeze_affine(p, mode)


def _affine_attrs(r: _Reader, mode: int, disabled: bool) -> dict:
  if mode not in (0, 1):
    raise r.fail(f'affine mode {mode}, expected 0 (CONV_MODE) or 1 (FC_MODE)')
  return dict(mode='conv' if mode == 0 else 'fc', disabled=disabled)


def _squeeze_affine(p: dict[str, np.ndarray], mode: int) -> dict[str, np.ndarray]:
  # CONV_MODE shapes are (1, C, 1, 1): keep [C]; FC_MODE keeps (k, nr, nc) per element.
  if mode == 0:
    return {k: v.reshape(-1) for k, v in p.items()}
  return {k: v.reshape(v.shape[1:]) for k, v in p.items()}


def _bn(r: _Reader, version: str) -> tuple[dict, dict]:
  params = r.tensor('bn params')
  gamma = r.alias('bn gamma')
  beta = r.alias('bn beta')
  r.tensor('bn means')
  r.tensor('bn invstds')
  running_means = r.tensor('bn running_means').reshape(-1)
  running_vars = r.tensor('bn running_variances').reshape(-1)
  r.int('bn num_updates')
  r.int('bn running_stats_window_size')
  _multipliers(r, 'bn')
  eps = r.float('bn eps')
  p = _split(r, params, [('gamma', gamma), ('beta', beta)], version)
  g, b = p['gamma'].reshape(-1), p['beta'].reshape(-1)
  if running_means.size != g.size or running_vars.size != g.size:
    raise r.fail(f'{version}: running stats have {running_means.size}/{running_vars.size} '
                 f'entries, gamma has {g.size}')
  # dlib turns bn_ into affine_ on load in inference nets; same arithmetic here, in float64.
  scale = g.astype(np.float64) / np.sqrt(running_vars.astype(np.float64) + eps)
  shift = b - scale * running_means
  mode = 0 if version == 'bn_con2' else 1
  folded = {'gamma': scale.astype(np.float32).reshape(gamma),
            'beta': shift.astype(np.float32).reshape(beta)}
  return _affine_attrs(r, mode, False), _squeeze_affine(folded, mode)


def _relu(r: _Reader, version: str) -> tuple[dict, dict]:
  disabled = r.bool('relu disabled') if version == 'relu_2' else False
  return dict(disabled=disabled), {}


def _pool(r: _Reader, version: str) -> tuple[dict, dict]:
  kernel = (r.int('pool nr'), r.int('pool nc'))
  stride = (r.int('pool stride_y'), r.int('pool stride_x'))
  padding = (r.int('pool padding_y'), r.int('pool padding_x'))
  return dict(kernel=kernel, stride=stride, padding=padding, everything=kernel == (0, 0)), {}


def _add_prev(r: _Reader, version: str) -> tuple[dict, dict]:
  return {}, {}


def _fc(r: _Reader, version: str) -> tuple[dict, dict]:
  num_outputs = r.int('fc num_outputs')
  num_inputs = r.int('fc num_inputs')
  params = r.tensor('fc params')
  weights = r.alias('fc weights')
  r.alias('fc biases')  # shape implied by weights and bias_mode
  bias_mode = r.int('fc bias_mode')
  mult = _multipliers(r, 'fc')
  use_bias = r.bool('fc use_bias') if version == 'fc_3' else True
  if bias_mode not in (0, 1):
    raise r.fail(f'fc bias_mode {bias_mode}, expected 0 (FC_HAS_BIAS) or 1 (FC_NO_BIAS)')
  has_bias = bias_mode == 0 and use_bias
  w_shape = (weights[0] * weights[1] * weights[2] * weights[3] // max(num_outputs, 1),
             num_outputs)
  if w_shape[0] != num_inputs:
    raise r.fail(f'fc weights {weights} disagree with num_inputs={num_inputs}, '
                 f'num_outputs={num_outputs}')
  parts = [('weights', w_shape)] + ([('biases', (num_outputs,))] if has_bias else [])
  # A params tensor may carry bias storage that fc_3 with use_bias=false ignores.
  flat = params.reshape(-1)
  if not has_bias and flat.size == math.prod(w_shape) + num_outputs:
    flat = flat[:math.prod(w_shape)]
  attrs = dict(num_inputs=num_inputs, num_outputs=num_outputs, has_bias=has_bias,
               multipliers=mult)
  return attrs, _split(r, flat, parts, 'fc')


_RECORDS = {
    'con_4': ('con', _con), 'con_5': ('con', _con), 'con_6': ('con', _con),
    'affine_': ('affine', _affine), 'affine_2': ('affine', _affine),
    'bn_con2': ('affine', _bn), 'bn_fc2': ('affine', _bn),
    'relu_': ('relu', _relu), 'relu_2': ('relu', _relu),
    'max_pool_2': ('max_pool', _pool), 'avg_pool_2': ('avg_pool', _pool),
    'add_prev_': ('add_prev', _add_prev),
    'fc_2': ('fc', _fc), 'fc_3': ('fc', _fc),
}


def _details(r: _Reader) -> Layer:
  offset = r.pos
  version = r.string('the layer record version')
  if version not in _RECORDS:
    raise r.fail(f'unsupported layer record {version!r} (supported: {", ".join(_RECORDS)}); '
                 'the network uses a layer this reader does not implement', offset)
  kind, parse = _RECORDS[version]
  attrs, params = parse(r, version)
  return Layer(kind=kind, version=version, offset=offset, attrs=attrs, params=params)


def _add_layer_state(r: _Reader, version: int) -> tuple[bool, ...]:
  # Training state: flags and (empty in shipped files) gradient/output tensors.
  flags = tuple(r.bool(what) for what in ('this_layer_setup_called', 'gradient_input_is_stale',
                                          'get_output_and_gradient_input_disabled'))
  r.tensor('x_grad')
  r.tensor('cached_output')
  r.tensor('params_grad' if not r.record == 0 else 'grad_final')
  if r.record == 0 and version >= 3:
    r.int('_sample_expansion_factor')
  return flags


def read_dlib_net(path: str | os.PathLike) -> DlibNet:
  """Parses a dlib DNN ``.dat`` file (a ``loss_metric`` network on an RGB input layer).

  Reads every byte; raises :class:`DlibFormatError` (naming file, byte offset and details record
  index) on truncation, a file that is not a dlib network, or a record it cannot read.
  """
  path = os.fspath(path)
  try:
    with open(path, 'rb') as f:
      buf = f.read()
  except OSError as e:
    raise DlibFormatError(f'{path}: cannot read the dlib model file: {e}') from e
  r = _Reader(buf, path)

  version = r.int('the add_loss_layer version')
  if version != 1:
    raise r.fail(f'add_loss_layer version {version}, expected 1: not a dlib network file', 0)
  loss_offset = r.pos
  try:
    loss = r.string('the loss record name', limit=64)
  except DlibFormatError as e:
    raise DlibFormatError(f'{e} (expected the loss record of a dlib DNN network: this is not '
                          'a dlib network file)') from None
  if loss == 'loss_metric_2':
    margin, dist_thresh = r.float('loss margin'), r.float('loss dist_thresh')
  elif loss == 'loss_metric_':
    margin, dist_thresh = 0.1, 0.75
  else:
    raise r.fail(f'loss layer {loss!r}: only loss_metric_ / loss_metric_2 (the face '
                 'recognition network) are supported', loss_offset)

  versions = []
  while r.peek_string() not in INPUT_LAYERS:
    start = r.pos
    v = r.int('a layer wrapper version')
    if v not in (1, 2, 3) or len(versions) > 100_000:
      raise r.fail(f'layer wrapper version {v} where 1, 2 or 3 was expected (after '
                   f'{len(versions)} wrapper versions, no input layer record found)', start)
    versions.append(v)
  if not versions or versions[-1] not in (2, 3) or 3 in versions[:-1]:
    raise r.fail(f'bad run of layer wrapper versions {versions[:8]}...: expected add_layer '
                 'versions 2 (tags/skips 1) ending with the input add_layer (3 or 2)')

  input_layer = r.string('the input layer name')
  means = np.array([r.float(f'input layer avg_{c}') for c in ('red', 'green', 'blue')])
  size = (r.int('input NR'), r.int('input NC')) if input_layer == 'input_rgb_image_sized' else None

  # Innermost add_layer first, then the enclosing version-2 ones, input side outwards.
  n_layers = 1 + versions[:-1].count(2)
  layers = []
  for i in range(n_layers):
    r.record = i
    layer = _details(r)
    flags = _add_layer_state(r, versions[-1] if i == 0 else 2)
    layers.append(dataclasses.replace(layer, state_flags=flags))
  r.record = None
  if r.pos != len(buf):
    raise r.fail(f'{len(buf) - r.pos} unexpected bytes after the last of {n_layers} layer '
                 'records')
  return DlibNet(path=path, file_size=len(buf), loss=loss, margin=margin, dist_thresh=dist_thresh,
                 wrapper_versions=tuple(versions), input_layer=input_layer, input_means=means,
                 input_size=size, layers=tuple(layers))


def face_resnet_plan() -> tuple[list[tuple[str, dict]], tuple[int, ...]]:
  """The face ResNet as (kind, expected attrs) per details record and its wrapper version run."""
  plan: list[tuple[str, dict]] = [
      ('con', dict(num_filters=32, in_channels=3, kernel=(7, 7), stride=(2, 2))),
      ('affine', dict(mode='conv')), ('relu', {}),
      ('max_pool', dict(kernel=(3, 3), stride=(2, 2), padding=(0, 0)))]
  header: list[int] = [2, 2, 2, 3]  # max_pool relu affine con(input), read outer -> inner
  c_in = 32
  for _, c, blocks, down in FACE_RESNET_LEVELS:
    for b in range(blocks):
      s = 2 if (down and b == 0) else 1
      plan += [('con', dict(num_filters=c, in_channels=c_in, kernel=(3, 3), stride=(s, s),
                            padding=(0, 0) if s == 2 else (1, 1))),
               ('affine', dict(mode='conv')), ('relu', {}),
               ('con', dict(num_filters=c, in_channels=c, kernel=(3, 3), stride=(1, 1),
                            padding=(1, 1))),
               ('affine', dict(mode='conv'))]
      if s == 2:
        plan.append(('avg_pool', dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0))))
        # relu add_prev2 avg_pool skip1 tag2 affine con relu affine con tag1
        header = [2, 2, 2, 1, 1, 2, 2, 2, 2, 2, 1] + header
      else:
        # relu add_prev1 affine con relu affine con tag1
        header = [2, 2, 2, 2, 2, 2, 2, 1] + header
      plan += [('add_prev', {}), ('relu', {})]
      c_in = c
  plan += [('avg_pool', dict(kernel=(0, 0), stride=(1, 1))),
           ('fc', dict(num_inputs=c_in, num_outputs=FACE_RESNET_DESCRIPTOR_DIM, has_bias=False))]
  header = [2, 2] + header
  return plan, tuple(header)


def read_face_resnet(path: str | os.PathLike) -> DlibNet:
  """:func:`read_dlib_net`, then checks the network is dlib's 150x150 face ResNet (29 con)."""
  net = read_dlib_net(path)
  plan, header = face_resnet_plan()

  def fail(msg: str) -> DlibFormatError:
    return DlibFormatError(f'{net.path}: not the dlib face recognition ResNet this code '
                           f'implements: {msg}')

  if net.input_layer != 'input_rgb_image_sized' or net.input_size != (
      FACE_RESNET_CHIP_SIZE, FACE_RESNET_CHIP_SIZE):
    raise fail(f'input layer {net.input_layer} of size {net.input_size}, expected '
               f'input_rgb_image_sized 150x150')
  if len(net.layers) != len(plan):
    raise fail(f'{len(net.layers)} layer details records, expected {len(plan)}')
  for i, (layer, (kind, want)) in enumerate(zip(net.layers, plan)):
    where = f'layer details record {i} (byte offset {layer.offset}, {layer.version})'
    if layer.kind != kind:
      raise fail(f'{where} is a {layer.kind} layer, expected {kind}')
    for key, value in want.items():
      if layer.attrs.get(key) != value:
        raise fail(f'{where}: {key}={layer.attrs.get(key)}, expected {value}')
    if layer.attrs.get('disabled') or layer.attrs.get('use_relu'):
      raise fail(f'{where}: disabled layers / fused relu are not supported')
    if kind == 'con' and not layer.attrs['has_bias']:
      raise fail(f'{where}: convolution without bias, expected a bias')
  if net.wrapper_versions != header:
    first = next(i for i, (a, b) in enumerate(itertools.zip_longest(net.wrapper_versions, header))
                 if a != b)
    raise fail(f'the run of {len(net.wrapper_versions)} wrapper versions differs from the face '
               f'ResNet\'s {len(header)} (tag/skip layout) at position {first}')
  return net
