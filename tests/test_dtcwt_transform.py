import numpy as np
import pytest

from stackmff.classical import dtcwt_transform as dt


def test_qshift_filter_is_orthonormal_with_quarter_sample_delay():
    h = dt.qshift_filter()
    n = len(h)
    assert h.sum() == pytest.approx(np.sqrt(2), abs=1e-9)
    for shift in range(n // 2):
        assert h[: n - 2 * shift] @ h[2 * shift:] == pytest.approx(float(shift == 0), abs=1e-8)
    omega = np.linspace(0.05, 0.3 * np.pi, 20)
    phase = np.unwrap(np.angle(np.exp(-1j * np.outer(omega, np.arange(n))) @ h))
    delay = -np.diff(phase) / np.diff(omega)
    np.testing.assert_allclose(delay, (n - 1) / 2 - 0.25, atol=0.05)


@pytest.mark.parametrize("shape", [(90, 124), (33, 47), (64, 64)])
def test_inverse_reconstructs_exactly(shape):
    image = np.random.default_rng(3).random(shape).astype(np.float32)
    coefficients = dt.forward(image, dt.max_levels(shape))
    assert all(band.dtype.kind == "c" and len(level) == 6
               for level in coefficients.highpass for band in level)
    np.testing.assert_allclose(dt.inverse(coefficients), image, atol=1e-5)


def test_subband_energy_is_nearly_shift_invariant():
    """The point of the dual tree: a shifted edge keeps its subband energy (a DWT does not)."""
    x = np.zeros((64, 64), np.float32)
    energies = []
    for shift in range(8):
        image = x.copy()
        image[:, 24 + shift:] = 1.0
        level = dt.forward(image, 3).highpass[2]
        energies.append(sum(float(np.sum(np.abs(b) ** 2)) for b in level))
    energies = np.array(energies)
    assert energies.std() / energies.mean() < 0.1


def test_the_filter_does_not_depend_on_the_machines_thread_count():
    """The optimiser behind the filter lands elsewhere with one BLAS thread than with two; the
    method uses stored coefficients, the same everywhere."""
    import os
    import subprocess
    import sys

    program = ("from stackmff.classical import dtcwt_transform as dt; "
               "print(repr(dt.qshift_filter().tolist()))")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    output = subprocess.run([sys.executable, "-c", program], env=env, check=True,
                            capture_output=True, text=True).stdout
    assert output.strip() == repr(dt.qshift_filter().tolist())
