"""The one pad-to-fixed-batch loop: every batch has the same shape, the padding is dropped."""
import numpy as np
import pytest

from gradejax import batching


def test_map_batches_pads_the_last_batch_and_drops_the_padding():
  x = np.arange(10)
  seen = []

  def fn(b):
    seen.append(b.copy())
    return {'double': b * 2, 'col': b[:, None] + 0.5}

  out = batching.map_batches(fn, x, 4)
  assert [s.shape for s in seen] == [(4,)] * 3  # one shape: one compile
  np.testing.assert_array_equal(seen[-1], [8, 9, 9, 9])  # padded with the last real row
  np.testing.assert_array_equal(out['double'], x * 2)
  np.testing.assert_array_equal(out['col'], x[:, None] + 0.5)
  np.testing.assert_array_equal(batching.pad_to_multiple(x[:3], 4), [0, 1, 2, 2])
  np.testing.assert_array_equal(batching.pad_to_multiple(x[:4], 4), x[:4])
  with pytest.raises(ValueError, match='at least one row'):
    batching.map_batches(fn, x[:0], 4)


def test_chunk_positions_and_padding_equal_the_old_inline_forms():
  import jax
  import jax.numpy as jnp
  for n, chunk in [(1, 1), (17, 16), (3, 8)]:
    n_pad = -(-n // chunk) * chunk  # the formula six attribution files wrote out
    assert batching.padded_length(n, chunk) == n_pad
    old = jnp.minimum(jnp.arange(n_pad), n - 1).reshape(-1, chunk)
    got = batching.chunk_positions(n, chunk)
    assert got.dtype == old.dtype
    np.testing.assert_array_equal(got, old)
    z = jnp.arange(n * 3.0).reshape(n, 3)
    old_z = jnp.concatenate([z, jnp.repeat(z[-1:], n_pad - n, axis=0)])
    np.testing.assert_array_equal(jax.jit(lambda a: batching.pad_to_multiple(a, chunk))(z),
                                  old_z)
    assert isinstance(batching.pad_to_multiple(np.asarray(z), chunk), np.ndarray)
