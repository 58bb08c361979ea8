"""The dlib .dat reader against the real model file, hand-encoded bytes and files re-written by
an independent writer (below, written from dlib's serialize.h rules, not from the reader)."""
import math

import numpy as np
import pytest

from gradejax.nets import dlib_format
from gradejax import paths
from gradejax.nets.dlib_format import DlibFormatError

DAT = paths.dlib_model(paths.FACE_RECOGNITION)


# ---- A small dlib serializer (serialize.h / tensor.h / layers.h) ------------------------------

def w_int(v: int) -> bytes:
  mag = abs(int(v)).to_bytes(8, 'little').rstrip(b'\0') or b'\0'
  return bytes([len(mag) | (0x80 if v < 0 else 0)]) + mag


def w_float(v: float, digits: int) -> bytes:
  """float_details: mantissa then exponent; float -> 24 digits, double -> 53, low zero bytes cut."""
  if v == 0:
    return w_int(0) + w_int(11)  # what dlib wrote for 0.0 in the shipped file
  m, e = math.frexp(v)
  mantissa, exponent = int(m * (1 << digits)), e - digits
  while mantissa and mantissa & 0xFF == 0:
    mantissa >>= 8
    exponent += 8
  return w_int(mantissa) + w_int(exponent)


def w_str(s: str) -> bytes:
  return w_int(len(s)) + s.encode()


def w_bool(b: bool) -> bytes:
  return b'1' if b else b'0'


def w_tensor(a: np.ndarray) -> bytes:
  shape = (a.size, 1, 1, 1) if a.ndim == 1 else a.shape
  return (w_int(2) + b''.join(w_int(d) for d in shape) +
          np.ascontiguousarray(a, '<f4').tobytes())


def w_alias(shape) -> bytes:
  return w_int(1) + b''.join(w_int(d) for d in shape)


EMPTY = w_tensor(np.zeros((0, 0, 0, 0), np.float32))


def w_layer(layer: dlib_format.Layer, version: str | None = None) -> bytes:
  """One details record; ``version`` may pick a newer record version of the same layer."""
  a, p = layer.attrs, layer.params
  v = version or layer.version
  dbl = lambda xs: b''.join(w_float(x, 53) for x in xs)
  if layer.kind == 'con':
    f, b = p['filters'], p['biases']
    out = (w_str(v) + w_tensor(np.concatenate([f.ravel(), b])) + w_int(a['num_filters']) +
           w_int(a['kernel'][0]) + w_int(a['kernel'][1]) + w_int(a['stride'][0]) +
           w_int(a['stride'][1]) + w_int(a['padding'][0]) + w_int(a['padding'][1]) +
           w_alias(f.shape) + w_alias((1, b.size, 1, 1)) + dbl(a['multipliers']))
    if v in ('con_5', 'con_6'):
      out += w_bool(True)
    if v == 'con_6':
      out += w_bool(False)
    return out
  if layer.kind == 'affine':
    g, b = p['gamma'], p['beta']
    if v == 'bn_con2':
      # Batch norm with running stats chosen so that folding gives back (gamma, beta) exactly
      # up to float rounding: var = 1 - eps -> scale = gamma, mean = 0 -> shift = beta.
      eps = 1e-5
      c = g.size
      stats = (w_tensor(np.zeros(c, np.float32)) + w_tensor(np.ones(c, np.float32)) +
               w_tensor(np.zeros(c, np.float32)) + w_tensor(np.full(c, 1 - eps, np.float32)))
      return (w_str(v) + w_tensor(np.concatenate([g, b])) + w_alias((1, c, 1, 1)) * 2 + stats +
              w_int(100) + w_int(1000) + dbl((1, 1, 1, 0)) + w_float(eps, 53))
    out = (w_str(v) + w_tensor(np.concatenate([g, b])) + w_alias((1, g.size, 1, 1)) * 2 +
           w_int(0))
    return out + (w_bool(False) if v == 'affine_2' else b'')
  if layer.kind == 'relu':
    return w_str(v) + (w_bool(False) if v == 'relu_2' else b'')
  if layer.kind in ('max_pool', 'avg_pool'):
    return w_str(v) + b''.join(w_int(x) for x in a['kernel'] + a['stride'] + a['padding'])
  if layer.kind == 'add_prev':
    return w_str(v)
  if layer.kind == 'fc':
    wts = p['weights']
    out = (w_str(v) + w_int(a['num_outputs']) + w_int(a['num_inputs']) +
           w_tensor(wts[:, :, None, None]) +  # stored (in, out, 1, 1), unlike con's flat params
           w_alias((wts.shape[0], wts.shape[1], 1, 1)) + w_alias((0, 0, 0, 0)) + w_int(1) +
           dbl(a['multipliers']))
    return out + (w_bool(False) if v == 'fc_3' else b'')
  raise AssertionError(layer.kind)


def w_net(net: dlib_format.DlibNet, versions: dict[int, str] | None = None,
          layers: list[bytes] | None = None) -> bytes:
  """The whole file; ``versions`` maps record index -> record version to write instead."""
  versions = versions or {}
  out = (w_int(1) + w_str(net.loss) + w_float(net.margin, 24) + w_float(net.dist_thresh, 24) +
         b''.join(w_int(v) for v in net.wrapper_versions) + w_str(net.input_layer) +
         b''.join(w_float(m, 24) for m in net.input_means) + w_int(net.input_size[0]) +
         w_int(net.input_size[1]))
  records = layers or [w_layer(l, versions.get(i)) for i, l in enumerate(net.layers)]
  for i, rec in enumerate(records):
    out += rec + b''.join(w_bool(f) for f in net.layers[i].state_flags) + EMPTY * 3
    if i == 0:
      out += w_int(1)  # _sample_expansion_factor of the input add_layer (version 3)
  return out


@pytest.fixture(scope='module')
def net():
  return dlib_format.read_face_resnet(DAT)


# ---- Primitive encodings ---------------------------------------------------------------------

@pytest.mark.parametrize('raw,value', [('01 00', 0), ('01 01', 1), ('81 05', -5),
                                       ('02 00 01', 256), ('03 62 90 f5', 16093282),
                                       ('81 1c', -28)])
def test_int_encoding(raw, value):
  r = dlib_format._Reader(bytes.fromhex(raw), 'x')
  assert r.int() == value and r.pos == len(bytes.fromhex(raw))


def test_float_encoding_examples_from_the_file():
  r = dlib_format._Reader(bytes.fromhex('03 0a d7 a3 81 1c 03 62 90 f5 81 11 01 10 81 04'), 'x')
  assert r.float() == np.float32(0.04)
  assert r.float() == 16093282 * 2.0 ** -17  # avg_red, 122.782 as float32
  assert r.float() == 1.0


def test_bad_int_control_byte_names_offset():
  r = dlib_format._Reader(b'\x01\x01\x7f', 'f.dat')
  r.int()
  with pytest.raises(DlibFormatError, match=r'f\.dat: byte offset 2: bad integer control byte'):
    r.int()


# ---- The real file ---------------------------------------------------------------------------

def test_real_file_structure(net):
  assert net.file_size == DAT.stat().st_size == 22_466_066
  assert (net.loss, net.input_layer, net.input_size) == ('loss_metric_2', 'input_rgb_image_sized',
                                                         (150, 150))
  assert np.float32(net.margin) == np.float32(0.04)
  assert np.float32(net.dist_thresh) == np.float32(0.6)
  np.testing.assert_array_equal(net.input_means.astype(np.float32),
                                np.float32([122.782, 117.001, 104.298]))
  assert len(net.layers) == 108
  assert {k: net.count(k) for k in ('con', 'affine', 'relu', 'max_pool', 'avg_pool',
                                    'add_prev', 'fc')} == dict(con=29, affine=29, relu=29,
                                                               max_pool=1, avg_pool=5,
                                                               add_prev=14, fc=1)
  assert net.num_params == 5_614_592
  v = net.wrapper_versions
  assert (len(v), v.count(2), v.count(1), v[-1]) == (130, 107, 22, 3)
  stem, fc = net.layers[0], net.layers[-1]
  assert stem.params['filters'].shape == (32, 3, 7, 7) and stem.attrs['padding'] == (0, 0)
  assert fc.params['weights'].shape == (256, 128) and not fc.attrs['has_bias']
  assert {l.version for l in net.layers} == {'con_4', 'affine_', 'relu_', 'max_pool_2',
                                             'avg_pool_2', 'add_prev_', 'fc_2'}
  assert all(np.isfinite(p).all() for l in net.layers for p in l.params.values())


def test_independent_writer_reproduces_the_file_byte_for_byte(net):
  # Reader and writer agree with each other *and* with dlib's bytes: every field was read.
  assert w_net(net) == DAT.read_bytes()


def test_newer_record_versions_are_read(net, tmp_path):
  first = {l.kind: i for i, l in reversed(list(enumerate(net.layers)))}
  newer = {i: 'con_5' for i, l in enumerate(net.layers) if l.kind == 'con'}
  newer.update({i: 'affine_2' for i, l in enumerate(net.layers) if l.kind == 'affine'})
  newer.update({i: 'relu_2' for i, l in enumerate(net.layers) if l.kind == 'relu'})
  newer[first['fc']] = 'fc_3'
  newer[first['con'] + 4 * 7] = 'con_6'  # one con_6 (use_relu = false)
  newer[first['affine']] = 'bn_con2'     # batch norm where an affine is expected
  file = tmp_path / 'newer.dat'
  file.write_bytes(w_net(net, newer))
  got = dlib_format.read_face_resnet(file)
  assert [l.version for l in got.layers] == [newer.get(i, l.version)
                                             for i, l in enumerate(net.layers)]
  assert got.num_params == net.num_params
  for i, (a, b) in enumerate(zip(got.layers, net.layers)):
    assert a.params.keys() == b.params.keys()
    for k in a.params:
      tol = 1e-6 if a.version == 'bn_con2' else 0.0  # folding divides by sqrt(var + eps)
      np.testing.assert_allclose(a.params[k], b.params[k], rtol=tol, atol=tol, err_msg=f'{i} {k}')


# ---- Bad files -------------------------------------------------------------------------------

@pytest.mark.parametrize('cut', [1, 40, 400, 123_456, 11_000_000, 22_466_065])
def test_truncated_file(tmp_path, cut):
  file = tmp_path / 'cut.dat'
  file.write_bytes(DAT.read_bytes()[:cut])
  with pytest.raises(DlibFormatError) as e:
    dlib_format.read_dlib_net(file)
  msg = str(e.value)
  assert str(file) in msg and 'byte offset' in msg and 'truncated' in msg
  if cut > 400:
    assert 'layer details record' in msg


def test_trailing_bytes(tmp_path):
  file = tmp_path / 'long.dat'
  file.write_bytes(DAT.read_bytes() + b'\x01\x00')
  with pytest.raises(DlibFormatError, match=r'2 unexpected bytes after the last of 108'):
    dlib_format.read_dlib_net(file)


@pytest.mark.parametrize('content', [b'', b'hello world, not a network\n',
                                     b'\x89PNG\r\n\x1a\n' + bytes(100), b'\x01\x01\x01'])
def test_not_a_dlib_network(tmp_path, content):
  file = tmp_path / 'other.dat'
  file.write_bytes(content)
  with pytest.raises(DlibFormatError, match=str(file).replace('.', r'\.') + r': byte offset \d+'):
    dlib_format.read_dlib_net(file)


def test_other_dlib_files_are_rejected():
  # A dlib shape predictor (not a DNN) and dlib's MMOD detector (a DNN with another loss).
  with pytest.raises(DlibFormatError, match='not a dlib network file'):
    dlib_format.read_dlib_net(paths.dlib_model(paths.SHAPE_PREDICTOR_5))
  with pytest.raises(DlibFormatError, match=r"byte offset 2: loss layer 'loss_mmod_'"):
    dlib_format.read_dlib_net(paths.dlib_model(paths.MMOD_DETECTOR))


def test_other_architecture(net, tmp_path):
  # Record 11 is level4/block1's first conv: make it strided, as if the net had another layout.
  layers = list(net.layers)
  con = layers[11]
  assert con.kind == 'con'
  layers[11] = dlib_format.Layer(con.kind, con.version, con.offset,
                                 dict(con.attrs, stride=(2, 2), padding=(0, 0)), con.params)
  file = tmp_path / 'other_arch.dat'
  file.write_bytes(w_net(net, layers=[w_layer(l) for l in layers]))
  assert dlib_format.read_dlib_net(file).layers[11].attrs['stride'] == (2, 2)  # valid dlib file
  with pytest.raises(DlibFormatError, match=r'other_arch\.dat: not the dlib face recognition '
                     r'ResNet.*record 11 \(byte offset \d+, con_4\): stride=\(2, 2\)'):
    dlib_format.read_face_resnet(file)


def test_unknown_record_names_record_and_offset(net, tmp_path):
  records = [w_layer(l) for l in net.layers]
  records[5] = w_str('sig_') + b''  # a layer type the reader does not implement
  file = tmp_path / 'sig.dat'
  file.write_bytes(w_net(net, layers=records))
  with pytest.raises(DlibFormatError, match=r"byte offset \d+, layer details record 5: "
                     r"unsupported layer record 'sig_'"):
    dlib_format.read_dlib_net(file)
