import numpy as np
import pytest

from stackmff.metrics import psnr, psnr_colour, score, ssim


def test_psnr_of_known_error():
    reference = np.full((32, 32), 100, np.uint8)
    result = reference.copy()
    result[::2] += 10  # MSE = 50 on half the rows with error 10
    assert psnr(result, reference) == pytest.approx(10 * np.log10(255**2 / 50), abs=1e-9)


def test_identical_images_score_perfectly():
    image = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    assert ssim(image, image) == pytest.approx(1.0)
    assert score(image, image).psnr == np.inf
    assert psnr_colour(image, image) == np.inf


def test_sixteen_bit_and_float_agree():
    image = np.random.default_rng(1).random((20, 20)).astype(np.float32)
    noisy = np.clip(image + 0.05, 0, 1)
    as16 = (noisy * 65535).round().astype(np.uint16)
    assert psnr(as16, image) == pytest.approx(psnr(noisy, image), abs=0.05)


def test_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in size"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
