"""Training the ``v3+`` refinement head with the frozen network's logits cached.

The network runs once per training stack (``cache``): each stack is rendered by the physical
renderer from the training scenes (never the held-out validation photos), written as 8-bit
colour as the benchmark stacks are, turned into luma as inference does, and put through the
same network forward that inference uses. Only the small head trains (``train``), so a CPU
step costs a fraction of a network step. Both stages stop after ``--max-minutes`` and pick up
where they stopped: cache files are written one per stack, training resumes ``last.pt``.

Usage: python -m stackmff.training.refine cache --out runs/refine-cache --count 1200
       python -m stackmff.training.refine train --cache runs/refine-cache --out runs/refine
       python -m stackmff.training.refine export runs/refine/last.pt HEAD.pt
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from stackmff.data.physical import PhysicalOptions, render_physical
from stackmff.data.sources import SceneSampler, SourceWeights
from stackmff.io.pixels import from_float, to_float
from stackmff.model import StackOutput
from stackmff.model.refine import HeadConfig, RefineHead, features
from stackmff.stack_ops import luma, window_luma
from stackmff.training.losses import selection_blend_loss
from stackmff.weights.head import load_head, save_head

# the training data of configs/default.toml (the shipped network's own)
RENDER = PhysicalOptions(noise=0.01, jpeg=0.2, label="error")
SOURCES = SourceWeights(dead_leaves=0.4, photos=0.5, motorcycle=0.1, debian_photos=True)


def render_cached(sampler: SceneSampler, n: int, rng: np.random.Generator) -> dict:
    """One training stack as inference sees it: 8-bit colour layers, their luma, the label
    map and the truth's luma."""
    scene = sampler.draw(rng)
    stack, label = render_physical(scene, n, rng, RENDER)
    layers = from_float(stack, np.dtype(np.uint8))
    return {"layers": layers, "grey": window_luma(layers), "label": label.astype(np.uint8),
            "truth": luma(to_float(from_float(scene.image, np.dtype(np.uint8))))}


def build_cache(out: Path, count: int, crop: int, seed: int, fuser,
                max_minutes: float | None = None, sizes: tuple[int, int] = (2, 24),
                sources: SourceWeights = SOURCES) -> int:
    """Write ``stack_XXXXX.npz`` (luma, V3 logits, label, truth) for every index below
    ``count`` not yet written; stack ``i`` is seeded by ``(seed, i)``, so a rerun continues
    the same set. Returns how many were written."""
    out.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(1)
    sampler = SceneSampler(crop, sources)
    start, written = time.monotonic(), 0
    for i in range(count):
        path = out / f"stack_{i:05d}.npz"
        if path.exists():
            continue
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            break
        rng = np.random.default_rng([seed, i])
        sample = render_cached(sampler, int(rng.integers(sizes[0], sizes[1] + 1)), rng)
        logits = fuser.logits(sample["grey"]).float().cpu().numpy()
        partial = path.with_suffix(".part.npz")
        np.savez(partial, grey=sample["grey"], logits=logits, label=sample["label"],
                 truth=sample["truth"])
        partial.rename(path)
        written += 1
    return written


def _augment(arrays: list[np.ndarray], crop: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random crop, flips and quarter turn of every array (layers on axis 0 or none)."""
    h, w = arrays[0].shape[-2:]
    y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    result = []
    for a in arrays:
        a = a[..., y:y + crop, x:x + crop]
        a = np.rot90(a, turns, axes=(-2, -1))
        result.append(np.ascontiguousarray(a[..., ::-1] if flip else a))
    return result


def stack_loss(head: RefineHead, sample: dict, psnr_weight: float = 0.0) -> torch.Tensor:
    """:func:`selection_blend_loss` on the refined logits, plus the soft blend's error
    against the sharp image, scaled alike (PSNR is measured against the sharp image), and
    with ``psnr_weight`` the log of the blend's squared error (the mean PSNR itself).
    ``sample`` holds ``grey``, ``label``, ``truth`` and ``features`` or ``logits``."""
    grey = torch.as_tensor(sample["grey"])
    if "features" in sample:
        logits = head.from_features(torch.as_tensor(sample["features"]))[None]
    else:
        logits = head(torch.as_tensor(sample["logits"]), grey)[None]
    label = torch.as_tensor(sample["label"].astype(np.int64))[None]
    truth = torch.as_tensor(sample["truth"])
    ideal = grey.gather(0, label)[0]
    scale = (grey - ideal).abs().mean().clamp_min(1e-6)
    blended = (logits[0].softmax(0) * grey).sum(0)
    loss = (selection_blend_loss(StackOutput(logits), label, grey[None, :, None])
            + (blended - truth).abs().mean() / scale)
    if psnr_weight:  # the log of the blend's squared error: -PSNR up to constants
        loss = loss + psnr_weight * torch.log((blended - truth).pow(2).mean() + 1e-8)
    return loss


def _psnr(x: torch.Tensor, truth: torch.Tensor) -> float:
    mse = ((x.clamp(0, 1) * 255).round() - (truth * 255).round()).pow(2).mean().item()
    return 10 * np.log10(255 ** 2 / max(mse, 1e-10))


@torch.no_grad()
def evaluate(head: RefineHead, samples: list[dict]) -> dict[str, float]:
    """Mean luma PSNR of the hard gather and the soft blend, head against plain V3."""
    scores = {"v3_hard": [], "v3_soft": [], "head_hard": [], "head_soft": []}
    for s in samples:
        grey, truth = torch.from_numpy(s["grey"]), torch.from_numpy(s["truth"])
        for name, logits in (("v3", torch.from_numpy(s["logits"])),
                             ("head", head(torch.from_numpy(s["logits"]), grey))):
            hard = grey.gather(0, logits.argmax(0)[None])[0]
            scores[f"{name}_hard"].append(_psnr(hard, truth))
            scores[f"{name}_soft"].append(_psnr((logits.softmax(0) * grey).sum(0), truth))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def _with_features(sample: dict, config: HeadConfig) -> dict:
    """The sample with the head's inputs computed once, on the whole cached crop (the focus
    measures commute with the flips and quarter turns of :func:`_augment`)."""
    found = features(torch.from_numpy(sample["logits"]), torch.from_numpy(sample["grey"]), config)
    return {"grey": sample["grey"], "label": sample["label"], "truth": sample["truth"],
            "features": found.numpy().astype(np.float16)}  # half the memory; crops go float


def _load(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def train(cache: Path, out: Path, steps: int, batch: int = 4, crop: int = 96, lr: float = 2e-3,
          seed: int = 0, max_minutes: float | None = None, held_out: int = 48,
          config: HeadConfig | None = None, log_every: int = 50,
          psnr_weight: float = 0.0) -> dict[str, float]:
    """Train the head on the cached stacks (the last ``held_out`` files are kept for
    evaluation), resuming ``out/last.pt``; cosine learning rate over ``steps``. Returns the
    held-out scores at the end."""
    files = sorted(cache.glob("stack_*[0-9].npz"))
    if len(files) <= held_out:
        raise ValueError(f"need more than {held_out} cached stacks in {cache}, got {len(files)}")
    config = config or HeadConfig()
    test = [_load(p) for p in files[-held_out:]]
    stacks = [_with_features(_load(p), config) for p in files[:-held_out]]
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    head, step, elapsed = RefineHead(config), 0, 0.0
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    last = out / "last.pt"
    if last.exists():
        head, payload = load_head(last)
        optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
        optimizer.load_state_dict(payload["optimizer"])
        step, elapsed = payload["meta"]["step"], payload["meta"]["seconds"]
    head.train()
    rng = np.random.default_rng([seed, step])
    start, losses = time.monotonic(), []
    log = out / "log.csv"
    while step < steps:
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            break
        for group in optimizer.param_groups:
            group["lr"] = float(lr * 0.5 * (1 + np.cos(np.pi * step / steps)))
        loss = 0.0
        for index in rng.choice(len(stacks), batch, replace=False):
            s = stacks[index]
            grey, found, label, truth = _augment(
                [s["grey"], s["features"], s["label"], s["truth"]], crop, rng)
            found = found.astype(np.float32)
            loss = loss + stack_loss(head, {"grey": grey, "features": found, "label": label,
                                            "truth": truth}, psnr_weight) / batch
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % log_every == 0 or step == steps:
            _checkpoint(head, optimizer, last, step, elapsed + time.monotonic() - start)
            with log.open("a", newline="") as handle:
                csv.writer(handle).writerow([step, f"{np.mean(losses):.5f}"])
            losses = []
    _checkpoint(head, optimizer, last, step, elapsed + time.monotonic() - start)
    head.eval()
    scores = evaluate(head, test)
    with log.open("a", newline="") as handle:
        csv.writer(handle).writerow([step, "eval", *(f"{k}={v:.3f}" for k, v in scores.items())])
    return scores


def _checkpoint(head: RefineHead, optimizer, path: Path, step: int, seconds: float) -> None:
    save_head(path, head, {"step": step, "seconds": round(seconds, 1)},
              {"optimizer": optimizer.state_dict()})


def export(checkpoint: Path, out: Path) -> None:
    """The head without optimizer state: what ships."""
    head, payload = load_head(checkpoint)
    meta = {k: v for k, v in payload["meta"].items() if k != "kind"}
    save_head(out, head, meta)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cache", help="render stacks and cache the network's logits")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--count", type=int, default=1200)
    c.add_argument("--crop", type=int, default=192)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--checkpoint", help="the network (default: the shipped weights)")
    c.add_argument("--max-minutes", type=float)
    t = sub.add_parser("train", help="train the head on a cache, resuming OUT/last.pt")
    t.add_argument("--cache", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--crop", type=int, default=96)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--max-minutes", type=float)
    t.add_argument("--width", type=int, default=HeadConfig.width)
    t.add_argument("--dilated", type=int, default=HeadConfig.dilated)
    t.add_argument("--psnr-weight", type=float, default=0.0,
                   help="weight of the log squared error of the blend (0: none)")
    e = sub.add_parser("export", help="write a checkpoint's head without optimizer state")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    if args.command == "cache":
        from stackmff.fusion.network_method import prepare_network

        fuser = prepare_network(args.checkpoint, tile=None)
        n = build_cache(args.out, args.count, args.crop, args.seed, fuser, args.max_minutes)
        print(f"wrote {n} stacks; {len(list(args.out.glob('stack_*[0-9].npz')))} in {args.out}")
    elif args.command == "train":
        config = HeadConfig(width=args.width, dilated=args.dilated)
        print(train(args.cache, args.out, args.steps, args.batch, args.crop, args.lr,
                    max_minutes=args.max_minutes, config=config, psnr_weight=args.psnr_weight))
    else:
        export(args.checkpoint, args.out)


if __name__ == "__main__":
    main()
