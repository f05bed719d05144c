"""Quality metrics: reference metrics under the paper's protocol, focus-map accuracy, and
no-reference measures for stacks without ground truth."""

from stackmff.metrics.focus import MapAccuracy, focus_map_accuracy
from stackmff.metrics.no_reference import qabf, sharpness
from stackmff.metrics.reference import Scores, grey8, psnr, psnr_colour, score, ssim

__all__ = ["MapAccuracy", "Scores", "focus_map_accuracy", "grey8", "psnr", "psnr_colour",
           "qabf", "score", "sharpness", "ssim"]
