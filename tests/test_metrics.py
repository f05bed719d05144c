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


def test_psnr_of_a_known_noise_level():
    rng = np.random.default_rng(0)
    reference = np.full((256, 256), 128, np.uint8)
    noisy = np.clip(reference + rng.normal(0, 5, reference.shape).round(), 0, 255).astype(np.uint8)
    # sigma 5 grey levels -> MSE ~25 -> PSNR ~ 34.15 dB
    assert psnr(noisy, reference) == pytest.approx(10 * np.log10(255**2 / 25), abs=0.15)


def test_focus_map_accuracy():
    from stackmff.metrics import focus_map_accuracy

    truth = np.array([[0, 1, 2, 3]])
    result = focus_map_accuracy(np.array([[0, 2, 2, 1]]), truth)
    assert result.exact == 0.5 and result.within_one == 0.75


def test_qabf_prefers_a_perfect_fusion_of_a_pair():
    import cv2

    from stackmff.metrics import qabf, sharpness

    sharp = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    sharp = cv2.GaussianBlur(sharp, (0, 0), 1.0)
    sharp = (sharp - sharp.min()) / np.ptp(sharp)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3.0)
    a, b = sharp.copy(), sharp.copy()
    a[:, 32:], b[:, :32] = blurred[:, 32:], blurred[:, :32]  # each sharp on one half
    pair = np.stack([a, b])
    perfect = qabf(pair, sharp)
    assert perfect > qabf(pair, a) and perfect > qabf(pair, b)
    assert 0.0 < perfect <= 1.0
    assert sharpness(sharp) > sharpness(a) > sharpness(blurred)
