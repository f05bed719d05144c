"""Quality metrics: reference metrics (PSNR, SSIM) under the paper's protocol."""

from stackmff.metrics.reference import Scores, grey8, psnr, psnr_colour, score, ssim

__all__ = ["Scores", "grey8", "psnr", "psnr_colour", "score", "ssim"]
