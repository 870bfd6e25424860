"""gan-bench: training speed (G steps/s against the machine's matmul peak and
a naive loop), start-up time, with --vs-script whole gan-train processes
against a reference script's, or with --quality a metric against training time."""

import json
import sys
import tempfile
from pathlib import Path

import torch

from gan_cli.bench.speed import (
    CONFIGS,
    DEFAULT_CONFIGS,
    REFERENCE,
    VS_ARGS,
    VS_OVERRIDES,
    _peak_memory_mb,
    bench_config,
    check_vs_script,
    fast_loop,
    flops_per_step,
    graph_loop,
    kernels_per_step,
    matmul_peak_gflops,
    reference_loop,
    startup_seconds,
    vs_script,
    write_mnist_idx,
)
from gan_cli.errors import OneLineParser, UserError, command, writing
from gan_cli.output.layout import safe_output_file


@command("gan-bench", writing="cannot write the figures")
def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--quality" in argv:  # quality against time: its own options
        from gan_cli.bench.quality import main as quality_main

        return quality_main([a for a in argv if a != "--quality"])
    parser = OneLineParser(prog="gan-bench", description=__doc__)
    parser.add_argument("--steps", type=int, default=30, help="timed generator steps per config")
    parser.add_argument("--warmup", type=int, default=5, help="untimed generator steps first")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="timed rounds of --steps, taken in turns with the naive loop; the best counts",
    )
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help=f"comma-separated, from: {', '.join(CONFIGS)} (default: {', '.join(DEFAULT_CONFIGS)})",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--no-reference", action="store_true", help="skip the naive loop")
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="also time each config with train.cuda_graphs (CUDA only), in turns with the eager loop",
    )
    parser.add_argument(
        "--startup",
        type=int,
        nargs="?",
        const=5,
        default=0,
        metavar="REPEATS",
        help="also time gan-train start-up, best of REPEATS (default 5) runs",
    )
    parser.add_argument(
        "--vs-script",
        type=Path,
        metavar="PATH",
        help="instead: whole processes, gan-train against this reference script (run with this "
        "Python), median of --vs-runs alternated runs of each, on the 5,000 bundled MNIST digits "
        "written as MNIST IDX files; the defaults match PyTorch-GAN's implementations/wgan/wgan.py",
    )
    parser.add_argument(
        "--vs-args",
        default=VS_ARGS,
        metavar="ARGS",
        help="the script's arguments, one string; {epochs} is --vs-epochs and {data} the folder "
        "holding MNIST/raw (also ../../data/mnist from the folder the script runs in) "
        f"(default {VS_ARGS!r})",
    )
    parser.add_argument(
        "--vs-epochs",
        type=int,
        default=10,
        help="epochs of the script; gan-train takes as many critic updates: "
        "79 batches of 64 per epoch / 5 critic steps (default 10 = 158 generator steps)",
    )
    parser.add_argument("--vs-runs", type=int, default=3, help="runs of each, alternated (default 3)")
    parser.add_argument(
        "--vs-overrides",
        default="",
        metavar="OVERRIDES",
        help=f"more gan-train overrides, one string, after {' '.join(VS_OVERRIDES)} "
        "(train.steps= here replaces the computed one)",
    )
    parser.add_argument("--json", type=safe_output_file, help="also write the figures to this file")
    parser.add_argument(
        "--quality",
        action="store_true",
        help="instead: sample quality against training time (gan-bench --quality -h)",
    )
    args = parser.parse_args(argv)
    if args.vs_script is not None:
        return _vs_script(args)
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise UserError(f"unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    if args.steps < 1 or args.rounds < 1 or args.warmup < 0 or args.startup < 0:
        raise UserError("--steps and --rounds must be >= 1, --warmup and --startup >= 0")

    from gan_cli.training.experiment import Experiment, pick_device

    device = pick_device(args.device)
    graphs = args.cuda_graphs and device.type == "cuda"
    if args.cuda_graphs and not graphs:
        print(
            f"gan-bench: note: CUDA graphs need a CUDA device (this is {device.type}); "
            f"timing the eager loops only",
            file=sys.stderr,
        )
    peak = matmul_peak_gflops(device)
    print(
        f"device {device} ({torch.get_num_threads()} threads), fp32 matmul peak "
        f"{peak:.1f} GFLOP/s; best of {args.rounds} rounds of {args.steps} generator steps "
        f"after {args.warmup} warm-up"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_reference:
            write_mnist_idx(Path(tmp))
        for name in names:
            cfg = bench_config([*CONFIGS[name], f"device={args.device}"])
            exp = Experiment(cfg)
            flops = flops_per_step(exp)
            kernels = kernels_per_step(exp)
            loops = {"fast": fast_loop(exp)}
            if name in REFERENCE and not args.no_reference:
                loops["reference"] = reference_loop(cfg, Path(tmp))
            if graphs:
                from gan_cli.training.cuda_graphs import capture_plan

                # Its own experiment: capturable optimizers would slow the eager loop.
                graphed_exp = Experiment(cfg)
                ok, why = capture_plan(cfg, graphed_exp.parts, device)
                if ok:
                    loops["graph"] = graph_loop(graphed_exp)
                else:
                    print(f"gan-bench: note: {name}: no CUDA graphs: {why}", file=sys.stderr)
            seconds = {}
            for key, loop in loops.items():
                loop.warm(max(args.warmup, 2) if key == "graph" else args.warmup)
            if "graph" in loops and loops["graph"].graphed.failed:
                print(
                    f"gan-bench: note: {name}: no CUDA graphs: {loops.pop('graph').graphed.failed}",
                    file=sys.stderr,
                )
            for _ in range(args.rounds):  # in turns, so a burst of other work hits both
                for key, loop in loops.items():
                    seconds[key] = min(seconds.get(key, float("inf")), loop.time(args.steps))
            critic = cfg.objective.critic_steps
            rate = args.steps / seconds["fast"]
            row = {
                "config": name,
                "g_steps_per_s": rate,
                "critic_steps_per_s": rate * critic,
                "images_per_s_through_d": rate * cfg.train.batch_size * (2 * critic + 1),
                "gflops_per_s": flops * rate / 1e9,
                "percent_of_peak": 100 * flops * rate / 1e9 / peak,
                "kernels_per_g_step": kernels,
                "peak_memory_mb": _peak_memory_mb(device),
                "updates": loops["fast"].updates,
            }
            if "reference" in loops:
                reference = args.steps / seconds["reference"]
                row["reference_g_steps_per_s"] = reference
                row["reference_updates"] = loops["reference"].updates
                row["speedup_vs_reference"] = rate / reference
            if "graph" in loops:
                row["graph_g_steps_per_s"] = args.steps / seconds["graph"]
                row["graph_updates"] = loops["graph"].updates
                row["graph_speedup_vs_eager"] = row["graph_g_steps_per_s"] / rate
            rows.append(row)
    # The peak again, after the configs: the best of both readings counts.
    peak_after = matmul_peak_gflops(device)
    if peak_after > peak:
        for row in rows:
            row["percent_of_peak"] *= peak / peak_after
        print(
            f"fp32 matmul peak measured again after the configs: {peak_after:.1f} GFLOP/s "
            f"(% peak below uses it)"
        )
        peak = peak_after
    _print_table(rows)
    result = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "matmul_peak_gflops": peak,
        "steps": args.steps,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "configs": rows,
    }
    if args.startup:
        result["startup"] = s = startup_seconds(args.startup)
        print(
            f"start-up (best of {args.startup}): import torch+torchvision "
            f"{s['import_torch_torchvision_s']:.2f} s; gan-train train.steps=1 "
            f"{s['gan_train_1_step_s']:.2f} s ({s['overhead_s']:+.2f} s), of which the final "
            f"evaluation {s['gan_train_1_step_s'] - s['gan_train_1_step_no_eval_s']:.2f} s "
            f"({s['overhead_no_eval_s']:+.2f} s without it); import torch alone "
            f"{s['import_torch_s']:.2f} s, gan-train without the evaluation "
            f"{s['beyond_torch_no_eval_s']:+.2f} s beyond it"
        )
    if args.json:
        _write_json(args.json, result)


def _write_json(path: Path, figures: dict) -> None:
    with writing(path):
        path.write_text(json.dumps(figures, indent=2) + "\n")


def _vs_script(args) -> None:
    """Whole processes, side by side: the medians, their ratio, and the
    commands (the script's folder and data paths are temporary)."""
    import shlex

    check_vs_script(args.vs_script, args.vs_args, args.vs_epochs, args.vs_runs)
    print(
        f"whole processes, {args.vs_runs} alternated runs each: gan-train against "
        f"{args.vs_script} ({args.vs_epochs} epochs of the 5,000 bundled MNIST digits)",
        flush=True,
    )
    result = vs_script(
        args.vs_script,
        args.vs_args,
        epochs=args.vs_epochs,
        runs=args.vs_runs,
        device=args.device,
        overrides=shlex.split(args.vs_overrides),
        log=lambda line: print(line, flush=True),
    )
    print(
        f"gan-train {result['ours_median_s']:.2f} s, {args.vs_script.name} "
        f"{result['theirs_median_s']:.2f} s (medians): gan-train {result['speedup']:.2f}x as fast"
    )
    if args.json:
        _write_json(args.json, {"vs_script": result})


def _print_table(rows: list[dict]) -> None:
    header = [
        "config",
        "G steps/s",
        "critic steps/s",
        "D images/s",
        "GFLOP/s",
        "% peak",
        "kernels/step",
        "peak MB",
        "naive G steps/s",
        "speed-up",
    ]
    graphed = any("graph_g_steps_per_s" in r for r in rows)
    if graphed:
        header += ["graph G steps/s", "graph/eager"]
    lines = [header]
    for r in rows:
        lines.append(
            [
                r["config"],
                f"{r['g_steps_per_s']:.2f}",
                f"{r['critic_steps_per_s']:.1f}",
                f"{r['images_per_s_through_d']:.0f}",
                f"{r['gflops_per_s']:.1f}",
                f"{r['percent_of_peak']:.0f}%",
                str(r["kernels_per_g_step"]),
                f"{r['peak_memory_mb']:.0f}",
                f"{r['reference_g_steps_per_s']:.2f}" if "reference_g_steps_per_s" in r else "-",
                f"{r['speedup_vs_reference']:.2f}x" if "speedup_vs_reference" in r else "-",
            ]
        )
        if graphed:
            lines[-1] += [
                f"{r['graph_g_steps_per_s']:.2f}" if "graph_g_steps_per_s" in r else "-",
                f"{r['graph_speedup_vs_eager']:.2f}x" if "graph_speedup_vs_eager" in r else "-",
            ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )


if __name__ == "__main__":
    main()
