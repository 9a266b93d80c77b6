#!/usr/bin/env python3
"""Eager-PyTorch twin of one gyrus MAE pretraining step, for `gyrus bench train`.

`gyrus bench train` times MAE pretraining steps of gyrus's U-Net in C++ (LibTorch) and
runs this script with the Python of the same LibTorch to time the *same* network, batch,
patch, objective and precision in eager PyTorch, written as a user would write it
(default allocator, default settings, torch.set_num_threads(threads)).

The network mirrors runtime/src/Models.cpp exactly (parameter names as in gyrus's
checkpoints, so the state-dict keys match too):
  encoder (UNetEncoderImpl): stage s (0..stages-1) has `convs-per-stage` ConvBlocks
    `encoder.stage<s>.conv<i>`; the first block of every stage s >= 1 has stride 2.
    Stage s has width min(width << s, max-width).
  ConvBlock: Conv3d(3x3x3, padding 1, no bias) -> InstanceNorm3d(affine=True,
    track_running_stats=False, eps 1e-5) -> LeakyReLU(0.01).
  decoder (MaeDecoderImpl, no skips): from the deepest map, for s = stages-2 .. 0:
    trilinear x2 upsample (align_corners=False) then ConvBlock `decoder.up<s>`
    (width(s+1) -> width(s), stride 1); then `decoder.head`, a 1x1x1 Conv3d with bias
    to in-channels.
MAE objective (MaeObjective + maeMask + maeLoss): a new mask every step; the volume is
tiled by cubes of `cube` voxels (partial cubes at the high ends), exactly
round(mask * cells) cells per sample are masked (a uniform random subset); the encoder
sees input * (1 - mask); the loss is the MSE against the clean input over ALL voxels
(gyrus's default, mae(masked_only = false)), or over masked voxels with --masked-only
(sum(sq * mask) / max(sum(mask), 1)).
One step (Trainer::run): set lr (cosine schedule over warmup+steps, as gyrus sets it every
step; no warm-up), zero_grad, forward + loss (under torch.autocast(device, bfloat16) with
--precision bf16; fp32 master weights, loss cast to fp32), backward outside autocast,
clip_grad_norm_(clip) over all parameters (with --clip 0: the gradient norm is still
computed, as gyrus does), AdamW.step (betas 0.9/0.999, eps 1e-8, no amsgrad: the LibTorch
defaults; lr and weight decay from the flags, defaults = gyrus's adamw() defaults).

Flags (all that the C++ passes):
  --model unet            only the U-Net is twinned
  --width W --stages S --convs-per-stage C --max-width M --in-channels I
  --batch B --patch P     input [B, I, P, P, P], random normal, generated on the device
                          once before timing (the clean target is the input itself)
  --mask 0.6 --cube 4     MAE mask ratio and cube side
  --masked-only           loss over masked voxels only (default: all voxels)
  --precision fp32|bf16
  --device cpu|cuda
  --threads T             torch.set_num_threads(T)
  --warmup N --steps N    untimed steps, then timed steps
  --seed 0                torch.manual_seed
  --lr 1e-4 --weight-decay 3e-5 --clip 1.0   (gyrus's ir::Optimizer defaults)
  --expect-params N       exit with status 3 if the model's parameter count differs

Output: one JSON object on stdout:
  {"pytorch_step_ms": median ms per timed step, "pytorch_step_ms_all": [...],
   "pytorch_peak_mb": peak memory in MiB (CPU: getrusage maxrss of the process after the
   run; CUDA: torch.cuda.max_memory_allocated), "pytorch_rss_before_mb": maxrss before
   the model was built (the interpreter + torch baseline), "params": parameter count,
   "expected_params": gyrus's count from ir::parameterCount + the plan's decoder count,
   "final_loss": last step's loss, "torch_version", "device", "precision", "threads"}
"""

import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def width_of(args, s):
    return min(args.width << s, args.max_width)


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm = nn.InstanceNorm3d(cout, affine=True)

    def forward(self, x):
        return F.leaky_relu(self.norm(self.conv(x)), 0.01)


class UNetEncoder(nn.Module):
    def __init__(self, args):
        super().__init__()
        cin = args.in_channels
        self.stages = []
        for s in range(args.stages):
            stage = nn.Module()
            for i in range(args.convs_per_stage):
                stride = 2 if (s > 0 and i == 0) else 1
                stage.add_module(f"conv{i}", ConvBlock(cin, width_of(args, s), stride))
                cin = width_of(args, s)
            self.add_module(f"stage{s}", stage)
            self.stages.append(stage)

    def forward(self, x):
        out = []
        for stage in self.stages:
            for block in stage.children():
                x = block(x)
            out.append(x)
        return out


class MaeDecoder(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.ups = []
        for s in range(args.stages - 1):
            block = ConvBlock(width_of(args, s + 1), width_of(args, s), 1)
            self.add_module(f"up{s}", block)
            self.ups.append(block)
        self.head = nn.Conv3d(width_of(args, 0), args.in_channels, 1, bias=True)

    def forward(self, x):
        for block in reversed(self.ups):
            x = block(F.interpolate(x, scale_factor=2.0, mode="trilinear", align_corners=False))
        return self.head(x)


class MaeNet(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.encoder = UNetEncoder(args)
        self.decoder = MaeDecoder(args)

    def forward(self, x):
        return self.decoder(self.encoder(x)[-1])


def expected_params(args):
    """gyrus's count: ir::parameterCount(UNetEncoder) + the plan's MAE decoder count."""
    total, cin = 0, args.in_channels
    for s in range(args.stages):
        w = width_of(args, s)
        for _ in range(args.convs_per_stage):
            total += cin * w * 27 + 2 * w
            cin = w
    for s in range(args.stages - 1):
        cin, cout = width_of(args, s + 1), width_of(args, s)
        total += cin * cout * 27 + 2 * cout
    return total + width_of(args, 0) * args.in_channels + args.in_channels


def mae_mask(batch, patch, ratio, cube, device):
    """[batch, 1, P, P, P] float, 1 where masked: round(ratio * cells) random cube cells per sample."""
    cube = max(1, cube)
    cells = -(-patch // cube)
    total = cells ** 3
    masked = int(math.floor(min(max(ratio, 0.0), 1.0) * total + 0.5))  # llround (ratio >= 0)
    ids = torch.rand(batch, total, device=device).argsort(dim=1)[:, :masked]
    grid = torch.zeros(batch, total, device=device)
    grid.scatter_(1, ids, 1.0)
    grid = grid.view(batch, 1, cells, cells, cells)
    for dim in (2, 3, 4):
        grid = grid.repeat_interleave(cube, dim=dim)
    return grid[:, :, :patch, :patch, :patch]


def mae_loss(reconstruction, target, mask, masked_only):
    sq = (reconstruction - target).square()
    if not masked_only:
        return sq.mean()
    weight = mask.expand_as(sq)
    return (sq * weight).sum() / weight.sum().clamp_min(1.0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="unet", choices=["unet"])
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--stages", type=int, default=5)
    p.add_argument("--convs-per-stage", type=int, default=2)
    p.add_argument("--max-width", type=int, default=320)
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--patch", type=int, default=96)
    p.add_argument("--mask", type=float, default=0.6)
    p.add_argument("--cube", type=int, default=4)
    p.add_argument("--masked-only", action="store_true")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=3e-5)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--expect-params", type=int, default=None)
    args = p.parse_args()

    if args.patch % (1 << (args.stages - 1)) != 0:
        sys.exit(f"train_twin.py: patch {args.patch} is not divisible by the total stride {1 << (args.stages - 1)}")
    if args.steps < 1:
        sys.exit("train_twin.py: --steps must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("train_twin.py: --device cuda but torch.cuda.is_available() is false")

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    net = MaeNet(args).to(device)
    params = sum(t.numel() for t in net.parameters())
    expected = expected_params(args)
    if params != expected:
        sys.exit(f"train_twin.py: the twin has {params} parameters, gyrus's count is {expected}")
    if args.expect_params is not None and params != args.expect_params:
        print(f"train_twin.py: the twin has {params} parameters, --expect-params says {args.expect_params}",
              file=sys.stderr)
        sys.exit(3)

    parameters = list(net.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=args.weight_decay)
    x = torch.randn(args.batch, args.in_channels, args.patch, args.patch, args.patch, device=device)
    bf16 = args.precision == "bf16"
    total_steps = args.warmup + args.steps

    def lr_at(step):  # Trainer::learningRate without warm-up epochs: cosine over all steps
        return args.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(1, total_steps)))

    def step(k):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(k)
        optimizer.zero_grad()
        mask = mae_mask(args.batch, args.patch, args.mask, args.cube, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            reconstruction = net(x * (1.0 - mask))
            loss = mae_loss(reconstruction, x, mask, args.masked_only)
        loss = loss.float()
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(parameters, args.clip)
        else:
            torch.stack([q.grad.norm() for q in parameters if q.grad is not None]).norm()
        optimizer.step()
        return loss

    net.train()
    times = []
    loss = None
    for k in range(total_steps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = step(k)
        if cuda:
            torch.cuda.synchronize()
        if k >= args.warmup:
            times.append((time.perf_counter() - start) * 1000.0)

    final_loss = float(loss.item())
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / (1024.0 * 1024.0)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({
        "pytorch_step_ms": statistics.median(times),
        "pytorch_step_ms_all": times,
        "pytorch_peak_mb": peak,
        "pytorch_rss_before_mb": rss_before,
        "params": params,
        "expected_params": expected,
        "final_loss": final_loss,
        "torch_version": torch.__version__,
        "device": args.device,
        "precision": args.precision,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
