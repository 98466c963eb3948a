#!/usr/bin/env python3
"""vene side by side with pyvene + torch, on the same shapes and the same weights.

Run it with the Python of an environment that has torch, transformers and pyvene installed
(they are not dependencies of vene's build):

    path/to/venv/bin/python scripts/vs_pyvene.py --rounds 3 --out /tmp/vs-pyvene

Step 1 writes (or reuses) in --out: a random GPT-2 small (transformers `GPT2Config()`,
seed 0: config.json + model.safetensors), a random ReLU autoencoder 768 -> 24576 in pyvene's
`AutoencoderLayer` layout (autoencoder.safetensors: encoder.0.weight [L, d], encoder.0.bias,
decoder.0.weight [d, L], decoder.0.bias), the token batches (inputs.json) and the activations
of the SAE-alone case (activations.safetensors). Both sides read these files.

Step 2, per round and per case: times pyvene (one warm-up call, then calls until
--measurement-time seconds have passed and at least 3 were made; the median), then vene's
criterion bench of that case (`cargo bench -p vene --bench vs_pyvene`, VENE_BENCH_MODEL_DIR=--out;
criterion's median), in alternating order from round to round so that drift hits both sides.
Both run on 2 threads (torch.set_num_threads(2); RAYON_NUM_THREADS=2 for vene), f32, pyvene
under torch.no_grad().

It prints a markdown table of pyvene time / vene time (> 1: vene is faster; the median over
rounds, with the smallest and largest ratio) and writes it with every measurement to
--out/vs_pyvene.json. Before the rounds it checks that both compute the same last-token
logits for the vanilla and autoencoder cases at batch 1 x 32 (the max abs difference is
printed; --skip-check skips the check).

Cases (each at batch 8 x 128 and 1 x 32 tokens): plain forward (logits everywhere); vanilla
interchange at layer 6 block_output, source position 3 into base position 5; the same through
the autoencoder with 16 latents swapped; the autoencoder intervention alone at every position
of a [B, T, 768] activation. vene's intervened cases are timed twice: with logits at the last
token only (`LogitsAt::Last`, what it offers for speed) and at every position (what pyvene
always computes).
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import transformers
import pyvene as pv
from pyvene.models.layers import AutoencoderLayer
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
THREADS = 2
LAYER = 6
D_MODEL = 768
LATENTS = 24576
SWAPPED = 16
SOURCE_POSITION = 3
BASE_POSITION = 5
SHAPES = {"b8t128": (8, 128), "b1t32": (1, 32)}
# pyvene case -> the vene bench ids that it is compared with
CASES = {
    "plain": ["plain"],
    "vanilla": ["vanilla", "vanilla_all_logits"],
    "ae": ["ae", "ae_all_logits"],
    "sae_alone": ["sae_alone"],
}
ASSET_VERSION = 1


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="folder for the weights and results")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--measurement-time", type=float, default=5.0, help="seconds per case and side")
    p.add_argument("--warm-up-time", type=float, default=1.0, help="criterion's warm-up, seconds")
    p.add_argument("--only", default="", help="regex: run only the case ids it matches (e.g. b1t32)")
    p.add_argument("--skip-check", action="store_true", help="skip the logits agreement check")
    return p.parse_args()


# ---------------------------------------------------------------- step 1: shared files


def assets_ready(out):
    manifest = out / "assets.json"
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("version") == ASSET_VERSION
    except ValueError:
        return False


def make_assets(out):
    """Writes the model, autoencoder, tokens and activations into `out` (unless there)."""
    out.mkdir(parents=True, exist_ok=True)
    if assets_ready(out):
        print(f"reusing the weights and inputs in {out}")
        return
    print(f"writing a random GPT-2 small, autoencoder and inputs to {out}")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    model.save_pretrained(out, safe_serialization=True)

    torch.manual_seed(1)
    ae = AutoencoderLayer(D_MODEL, LATENTS)
    save_file({k: v.detach().contiguous() for k, v in ae.state_dict().items()},
              str(out / "autoencoder.safetensors"))

    gen = torch.Generator().manual_seed(2)
    vocab = model.config.vocab_size
    tokens = {}
    acts = {}
    for name, (b, t) in SHAPES.items():
        tokens[name] = {
            "base": torch.randint(0, vocab, (b, t), generator=gen).tolist(),
            "source": torch.randint(0, vocab, (b, t), generator=gen).tolist(),
        }
        acts[f"base_{name}"] = torch.randn(b, t, D_MODEL, generator=gen)
        acts[f"source_{name}"] = torch.randn(b, t, D_MODEL, generator=gen)
    latent_dims = sorted(torch.randperm(LATENTS, generator=gen)[:SWAPPED].tolist())
    inputs = {
        "layer": LAYER,
        "source_position": SOURCE_POSITION,
        "base_position": BASE_POSITION,
        "latent_dims": latent_dims,
        "tokens": tokens,
    }
    (out / "inputs.json").write_text(json.dumps(inputs))
    save_file(acts, str(out / "activations.safetensors"))
    # written last: its presence says the rest is complete
    (out / "assets.json").write_text(json.dumps({"version": ASSET_VERSION}))


# ---------------------------------------------------------------- pyvene side


class PyveneSide:
    """The model, the intervenable models and the inputs of every case, on pyvene."""

    def __init__(self, out):
        self.model = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
        inputs = json.loads((out / "inputs.json").read_text())
        self.latent_dims = inputs["latent_dims"]
        self.tokens = {
            name: {k: torch.tensor(v, dtype=torch.long) for k, v in batches.items()}
            for name, batches in inputs["tokens"].items()
        }
        self.acts = load_file(str(out / "activations.safetensors"))

        self.vanilla = self._intervenable(pv.VanillaIntervention(embed_dim=D_MODEL))
        self.ae_iv = pv.AutoencoderIntervention(embed_dim=D_MODEL, latent_dim=LATENTS)
        self.ae_iv.autoencoder.load_state_dict(load_file(str(out / "autoencoder.safetensors")))
        self.ae_iv.set_interchange_dim(torch.tensor(self.latent_dims))
        self.ae_iv.eval()
        self.ae = self._intervenable(self.ae_iv)

    def _intervenable(self, intervention):
        config = pv.IntervenableConfig(
            representations=[
                pv.RepresentationConfig(LAYER, "block_output", "pos", 1, intervention=intervention)
            ]
        )
        m = pv.IntervenableModel(config, model=self.model)
        m.disable_model_gradients()
        return m

    def _intervened(self, model, shape):
        batch = self.tokens[shape]["base"].shape[0]
        _, out = model(
            base={"input_ids": self.tokens[shape]["base"]},
            sources=[{"input_ids": self.tokens[shape]["source"]}],
            unit_locations={
                "sources->base": (
                    [[[SOURCE_POSITION]] * batch],
                    [[[BASE_POSITION]] * batch],
                )
            },
        )
        return out.logits

    def call(self, case, shape):
        """A function running `case` at `shape` once."""
        if case == "plain":
            ids = self.tokens[shape]["base"]
            return lambda: self.model(input_ids=ids).logits
        if case == "vanilla":
            return lambda: self._intervened(self.vanilla, shape)
        if case == "ae":
            return lambda: self._intervened(self.ae, shape)
        if case == "sae_alone":
            base, source = self.acts[f"base_{shape}"], self.acts[f"source_{shape}"]
            return lambda: self.ae_iv(base, source)
        raise ValueError(case)


def time_pyvene(fn, measurement_time):
    """Median seconds per call: one warm-up call, then calls for `measurement_time` (>= 3)."""
    with torch.no_grad():
        fn()
        times = []
        start = time.perf_counter()
        while len(times) < 3 or time.perf_counter() - start < measurement_time:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---------------------------------------------------------------- vene side


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def vene_env(out, extra=None):
    env = dict(os.environ)
    env["RAYON_NUM_THREADS"] = str(THREADS)
    env["VENE_BENCH_MODEL_DIR"] = str(out)
    env.update(extra or {})
    return env


def cargo_bench(out, args, extra_env=None, quiet=True):
    cmd = ["cargo", "bench", "-p", "vene", "--bench", "vs_pyvene"] + args
    res = subprocess.run(cmd, cwd=REPO, env=vene_env(out, extra_env),
                         stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT,
                         text=True)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stdout or ''}")


def time_vene(out, bench_id, args):
    cargo_bench(out, ["--", f"^vs_pyvene/{bench_id}$", "--warm-up-time", str(args.warm_up_time),
                      "--measurement-time", str(args.measurement_time), "--noplot"])
    est = target_dir() / "criterion" / "vs_pyvene" / bench_id / "new" / "estimates.json"
    return json.loads(est.read_text())["median"]["point_estimate"] / 1e9


def check_agreement(out, side):
    """Last-token logits of the vanilla and autoencoder cases at b1t32, vene against pyvene:
    the max abs difference, and how far the intervention moved pyvene's logits (a difference
    far below that shows both applied it)."""
    dump = out / "vene_b1t32_last_logits.safetensors"
    cargo_bench(out, ["--", "^check-only: no bench has this name$"],
                {"VENE_BENCH_DUMP_LOGITS": str(dump)})
    ours = load_file(str(dump))
    with torch.no_grad():
        plain = side.call("plain", "b1t32")()[0, -1]
        result = {}
        for case in ("vanilla", "ae"):
            theirs = side.call(case, "b1t32")()[0, -1]
            diff = (ours[case] - theirs).abs().max().item()
            moved = (theirs - plain).abs().max().item()
            result[case] = {"max_abs_diff": diff, "intervention_moved_logits_by": moved,
                            "ok": diff < 1e-4 and diff < 0.02 * moved}
    return result


# ---------------------------------------------------------------- report


def fmt_time(s):
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1e3:.1f} ms" if s >= 1e-3 else f"{s * 1e6:.0f} µs"


def summarise(rows):
    """Per vene id: median times and ratio (pyvene / vene) over rounds, min and max ratio."""
    table = []
    order = [i for ids in CASES.values() for i in ids]
    keys = {(r["shape"], r["id"]) for r in rows}
    for key in sorted(keys, key=lambda k: (list(SHAPES).index(k[0]), order.index(k[1]))):
        rs = [r for r in rows if (r["shape"], r["id"]) == key]
        ratios = [r["pyvene_s"] / r["vene_s"] for r in rs]
        table.append({
            "shape": key[0], "id": key[1], "case": rs[0]["case"],
            "pyvene_s": statistics.median(r["pyvene_s"] for r in rs),
            "vene_s": statistics.median(r["vene_s"] for r in rs),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "rounds": len(rs),
        })
    return table


def markdown(table):
    lines = ["| case | shape | pyvene + torch | vene | pyvene / vene | min | max |",
             "|---|---|---|---|---|---|---|"]
    for t in table:
        lines.append(f"| {t['id']} | {t['shape']} | {fmt_time(t['pyvene_s'])} | "
                     f"{fmt_time(t['vene_s'])} | **{t['ratio']:.2f}** | {t['ratio_min']:.2f} | "
                     f"{t['ratio_max']:.2f} |")
    return "\n".join(lines)


def machine():
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def main():
    args = parse_args()
    out = args.out.resolve()
    torch.set_num_threads(THREADS)
    make_assets(out)
    side = PyveneSide(out)
    print("building vene's bench (cargo bench --no-run)")
    cargo_bench(out, ["--no-run"], quiet=False)

    check = None
    if not args.skip_check:
        check = check_agreement(out, side)
        for case, c in check.items():
            print(f"{case} b1t32 last-token logits, vene vs pyvene: max abs diff "
                  f"{c['max_abs_diff']:.2e} (the intervention moves them by "
                  f"{c['intervention_moved_logits_by']:.2e}): {'ok' if c['ok'] else 'DIFFER'}")

    only = re.compile(args.only)
    rows = []
    for rnd in range(args.rounds):
        for shape in SHAPES:
            for case, ids in CASES.items():
                ids = [i for i in ids if only.search(f"{i}_{shape}")]
                if not ids:
                    continue
                fn = side.call(case, shape)
                vene_first = rnd % 2 == 1
                vene_s = {}
                if vene_first:
                    vene_s = {i: time_vene(out, f"{i}_{shape}", args) for i in ids}
                py_s = time_pyvene(fn, args.measurement_time)
                if not vene_first:
                    vene_s = {i: time_vene(out, f"{i}_{shape}", args) for i in ids}
                load = os.getloadavg()[0]
                for i in ids:
                    rows.append({"round": rnd, "shape": shape, "case": case, "id": i,
                                 "pyvene_s": py_s, "vene_s": vene_s[i], "load_1min": load})
                    print(f"round {rnd + 1}/{args.rounds} {i}_{shape}: pyvene {fmt_time(py_s)}, "
                          f"vene {fmt_time(vene_s[i])}, ratio {py_s / vene_s[i]:.2f} "
                          f"(load {load:.1f})", flush=True)

        # after every round, so that a run cut short keeps the rounds it finished
        write_report(out, args, check, rows, final=rnd + 1 == args.rounds)


def write_report(out, args, check, rows, final):
    if not rows:
        sys.exit(f"--only {args.only!r} matches no case")
    table = summarise(rows)
    md = markdown(table)
    loads = [r["load_1min"] for r in rows]
    note = (f"{machine()}, {THREADS} threads each; torch {torch.__version__}, pyvene "
            f"{pyvene_version()}; 1-minute load average {min(loads):.1f} to {max(loads):.1f} "
            f"while measured ({os.cpu_count()} CPUs)")
    report = {
        "machine": machine(), "threads": THREADS, "dtype": "f32",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "pyvene": pyvene_version(), "python": platform.python_version(),
        "rounds_done": len({r["round"] for r in rows}), "rounds": args.rounds,
        "measurement_time_s": args.measurement_time, "check": check,
        "summary": table, "measurements": rows, "markdown": md, "note": note,
    }
    (out / "vs_pyvene.json").write_text(json.dumps(report, indent=1))
    if final:
        print()
        print(md)
        print(f"\n{note}")
        print(f"\nwritten: {out / 'vs_pyvene.json'}")


def pyvene_version():
    try:
        from importlib.metadata import version
        return version("pyvene")
    except Exception:  # noqa: BLE001 - only a label in the report
        return getattr(pv, "__version__", None)


if __name__ == "__main__":
    main()
