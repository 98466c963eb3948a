#!/usr/bin/env python3
"""Acceptance check of `IntervenableModel::save_for_pyvene`: pyvene loads the folders vene
wrote and gives the outputs vene gave.

    cargo run --example save_for_pyvene -- /tmp/vene-for-pyvene
    /work/pyenv/bin/python scripts/check_pyvene_loads.py /tmp/vene-for-pyvene

For every `<Type>/` folder of the output folder (written by crates/vene/examples/
save_for_pyvene.rs on the tiny GPT-2 fixture), `pv.IntervenableModel.load(folder, model)`
(pyvene 9e33390), runs the same forward (the unit locations saved beside it) and prints the
largest absolute difference from vene's logits in `<Type>.safetensors` (and from the collected
activations, for CollectIntervention), with how much the intervention changed vene's logits
(so that a no-op on both sides shows). Exits 1 when a folder does not load or a difference
exceeds 1e-5.
"""
import sys
import traceback
from pathlib import Path

import torch
import transformers
import pyvene as pv
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "fixtures" / "pyvene" / "tiny-gpt2"
TOLERANCE = 1e-5


def check(folder: Path, model) -> float:
    name = folder.name
    want = load_file(str(folder.parent / f"{name}.safetensors"))
    im = pv.IntervenableModel.load(str(folder), model)
    im.disable_model_gradients()
    base = {"input_ids": want["base_input_ids"]}
    base_pos = want["base_positions"].tolist()
    with torch.no_grad():
        if "source_positions" in want:
            sources = [{"input_ids": want["source_input_ids"]}]
            src_pos = want["source_positions"].tolist()
            out = im(base, sources, unit_locations={"sources->base": ([src_pos], [base_pos])})
        elif name.startswith("SkipIntervention"):
            # pyvene's skip reads the module input of the source run: the base is the source
            out = im(base, [base], unit_locations={"sources->base": ([base_pos], [base_pos])})
        else:
            out = im(base, unit_locations={"base": [base_pos]})
    (base_out, collected), intervened = (
        out if name.startswith("CollectIntervention") else ((out[0], None), out[1])
    )
    logits = intervened.logits if intervened is not None else base_out.logits
    diff = (logits - want["intervened_logits"]).abs().max().item()
    if collected is not None:
        got = torch.stack([c.reshape(-1, c.shape[-1]) for c in collected]).reshape(
            want["collected"].shape
        )
        diff = max(diff, (got - want["collected"]).abs().max().item())
    changed = (want["intervened_logits"] - want["original_logits"]).abs().max().item()
    return diff, changed


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    out = Path(sys.argv[1])
    model = transformers.GPT2LMHeadModel.from_pretrained(str(MODEL)).eval()
    failed = 0
    print("| intervention | pyvene loads | max abs diff, pyvene vs vene | intervention's effect on vene's logits |")
    print("|---|---|---|---|")
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        try:
            diff, changed = check(folder, model)
            ok = diff <= TOLERANCE
            failed += not ok
            print(f"| {folder.name} | yes | {diff:.3g}{'' if ok else ' (too large)'} | {changed:.3g} |")
        except Exception as e:  # report every folder, then fail
            failed += 1
            print(f"| {folder.name} | no: {type(e).__name__}: {e} | - | - |")
            traceback.print_exc(file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
