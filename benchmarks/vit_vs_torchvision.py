"""Our ViT-B/16 (going_modular/vit.py) against torchvision's vit_b_16, side by side in one run.

    python benchmarks/vit_vs_torchvision.py                 # batch 8 at 224 px, CPU (and CUDA if present)
    python benchmarks/vit_vs_torchvision.py --reps 5 --device cpu

Both models hold the same weights (torchvision's random initialisation, copied into ours with
`load_torchvision_vit`), so they do the same arithmetic. For each device and precision it
prints the median time of a forward pass (inference mode) and of forward + backward (train
mode, dropout 0 in both), and the ratio ours / torchvision (< 1: ours is faster). Timings
alternate between the two models, rep by rep, so a machine that gets busier or quieter during
the run affects both alike.

Peak memory is measured for each (model, pass) in a fresh subprocess that builds only that
model: on the CPU the peak resident set size during the pass (Linux's VmHWM, reset just
before it) minus the resident size before it, on CUDA `torch.cuda.max_memory_allocated` minus
what the weights take. Both are what the pass adds on top of the model's weights.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_pair(device: torch.device) -> tuple[nn.Module, nn.Module]:
    """(ours, torchvision's) ViT-B/16 with identical weights, dropout 0, on `device`."""
    import torchvision

    from going_modular.vit import load_torchvision_vit, vit_b_16

    torch.manual_seed(0)
    theirs = torchvision.models.vit_b_16(weights=None)
    ours = load_torchvision_vit(vit_b_16(num_classes=1000, mlp_dropout=0.0, embedding_dropout=0.0), theirs.state_dict())
    return ours.to(device), theirs.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_pass(model: nn.Module, x: torch.Tensor, backward: bool, amp: str | None) -> None:
    """A forward pass (inference mode) or a forward + backward pass (train mode)."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if amp == "bf16" else nullcontext()
    if backward:
        model.train()
        with autocast:
            loss = model(x).float().logsumexp(dim=1).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
    else:
        model.eval()
        with torch.inference_mode(), autocast:
            model(x)


def time_pair(device: torch.device, batch: int, reps: int, amp: str | None) -> dict:
    """Median seconds per pass for both models, alternating rep by rep."""
    ours, theirs = build_pair(device)
    x = torch.randn(batch, 3, 224, 224, device=device)
    results = {}
    for backward in (False, True):
        times = {"ours": [], "torchvision": []}
        for model in (ours, theirs):  # warm-up
            one_pass(model, x, backward, amp)
        for _ in range(reps):
            for name, model in (("ours", ours), ("torchvision", theirs)):
                _sync(device)
                start = time.perf_counter()
                one_pass(model, x, backward, amp)
                _sync(device)
                times[name].append(time.perf_counter() - start)
        key = "fwd+bwd" if backward else "fwd"
        results[key] = {name: statistics.median(values) for name, values in times.items()}
    return results


def _status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (Linux), e.g. VmRSS (resident now) or VmHWM (its peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_memory_child(which: str, backward: bool, device_name: str, batch: int, amp: str | None) -> dict:
    """Run in a fresh process: the extra peak memory (MiB) of one pass of one model.

    Only the measured model is built (weights do not change memory), so no freed memory of the
    other one is there for the pass to reuse. On Linux the peak RSS is reset just before the pass
    (`/proc/self/clear_refs`), so the model's construction does not count.
    """
    import torchvision

    from going_modular.vit import vit_b_16

    device = torch.device(device_name)
    torch.manual_seed(0)
    if which == "ours":
        model = vit_b_16(num_classes=1000, mlp_dropout=0.0, embedding_dropout=0.0).to(device)
    else:
        model = torchvision.models.vit_b_16(weights=None).to(device)
    x = torch.randn(batch, 3, 224, 224, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        one_pass(model, x, backward, amp)
        torch.cuda.synchronize()
        return {"peak_mib": (torch.cuda.max_memory_allocated() - base) / 2**20}
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    base = _status_kib("VmRSS")
    one_pass(model, x, backward, amp)
    return {"peak_mib": (_status_kib("VmHWM") - base) / 1024}


def peak_memory(which: str, backward: bool, device: torch.device, batch: int, amp: str | None) -> float:
    """`peak_memory_child` in a new Python process, so earlier passes do not hide the peak."""
    args = [sys.executable, __file__, "--child", which, "--child-backward", str(int(backward)),
            "--device", str(device), "--batch-size", str(batch), "--amp", amp or "none"]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8, help="images per pass (224 x 224)")
    parser.add_argument("--reps", type=int, default=3, help="timed passes per model after one warm-up")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: the CPU, and CUDA too when a GPU is present")
    parser.add_argument("--amp", choices=["none", "bf16"], default="none", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["ours", "torchvision"], help=argparse.SUPPRESS)
    parser.add_argument("--child-backward", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        amp = None if args.amp == "none" else args.amp
        print(json.dumps(peak_memory_child(args.child, bool(args.child_backward), args.device, args.batch_size, amp)))
        return 0

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible. Use --device cpu or auto.")
    runs = []
    if args.device in ("auto", "cpu"):
        runs.append((torch.device("cpu"), None))
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        runs += [(torch.device("cuda"), None), (torch.device("cuda"), "bf16")]
    print(f"ViT-B/16, batch {args.batch_size} at 224 px, median of {args.reps} reps; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'device':<6} {'precision':<9} {'pass':<8} {'ours (s)':>9} {'tv (s)':>9} {'ratio':>6} "
          f"{'ours MiB':>9} {'tv MiB':>9} {'ratio':>6}")
    for device, amp in runs:
        timings = time_pair(device, args.batch_size, args.reps, amp)
        for key, result in timings.items():
            backward = key == "fwd+bwd"
            memory = {name: peak_memory(name, backward, device, args.batch_size, amp) for name in ("ours", "torchvision")}
            print(f"{device.type:<6} {amp or 'fp32':<9} {key:<8} {result['ours']:>9.3f} {result['torchvision']:>9.3f} "
                  f"{result['ours'] / result['torchvision']:>5.2f}x {memory['ours']:>9.0f} {memory['torchvision']:>9.0f} "
                  f"{memory['ours'] / max(memory['torchvision'], 1e-9):>5.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
