#!/usr/bin/env python3
"""Writes tests/fixtures/pyvene/saved_das_intervenable/ and saved_das_expected.safetensors:
a folder pyvene saves after training rotations, whose `rotate_layer.parametrizations.weight.
{original, 0.base}` are away from their initial `-I`, so that vene's load must compute
torch's orthogonal map (matrix_exp for the square rotation, Householder for the low-rank one).

- a RotatedSpaceIntervention (interchange_dim 4) at layer 0's block output and a
  LowRankRotatedSpaceIntervention (rank 3) at layer 1's block output, on the tiny GPT-2
  fixture, trained 5 Adam steps (lr 0.05, seed 13) to raise the logit of token 7 at base
  position 3 after interchanging source position 5 into base position 3;
- saved_das_expected.safetensors: `rotation.<key>` the weight pyvene computes for each
  (`rotate_layer.weight`), and `intervened_logits` of the loaded folder on the oracle's base
  and source ids (source position 5 into base position 3, both interventions).

Run with /work/pyenv/bin/python (torch, transformers, pyvene 9e33390, safetensors).
"""
import shutil
from pathlib import Path

import torch
import transformers
import pyvene as pv
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "pyvene"
OUT = FIX / "saved_das_intervenable"


def locations(batch):
    return {"sources->base": ([[[5]] * batch] * 2, [[[3]] * batch] * 2)}


def main():
    torch.manual_seed(13)
    model = transformers.GPT2LMHeadModel.from_pretrained(str(FIX / "tiny-gpt2")).eval()
    config = pv.IntervenableConfig(
        representations=[
            pv.RepresentationConfig(0, "block_output", "pos", 1),
            pv.RepresentationConfig(1, "block_output", "pos", 1, low_rank_dimension=3),
        ],
        intervention_types=[pv.RotatedSpaceIntervention, pv.LowRankRotatedSpaceIntervention],
    )
    im = pv.IntervenableModel(config, model)
    im.disable_model_gradients()
    list(im.interventions.values())[0].set_interchange_dim(4)
    oracle = load_file(str(FIX / "oracle_gpt2.safetensors"))
    base = {"input_ids": oracle["gpt2.base_input_ids"]}
    sources = [{"input_ids": oracle["gpt2.source_input_ids"]}]
    batch = base["input_ids"].shape[0]
    params = [p for iv in im.interventions.values() for p in iv.parameters()]
    opt = torch.optim.Adam(params, lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        _, out = im(base, sources, unit_locations=locations(batch))
        loss = -out.logits[:, 3, 7].mean()
        loss.backward()
        opt.step()
    if OUT.exists():
        shutil.rmtree(OUT)
    im.save(str(OUT))
    loaded = pv.IntervenableModel.load(str(OUT), model)
    expected = {}
    for key, iv in loaded.interventions.items():
        original = iv.rotate_layer.parametrizations.weight.original
        minus_id = -torch.eye(*original.shape)
        assert (original - minus_id).abs().max() > 1e-2, "training did not move the rotation"
        expected[f"rotation.{key}"] = iv.rotate_layer.weight.detach().contiguous()
    with torch.no_grad():
        _, out = loaded(base, sources, unit_locations=locations(batch))
    expected["intervened_logits"] = out.logits.detach().contiguous()
    save_file(expected, str(FIX / "saved_das_expected.safetensors"))
    print(sorted(p.name for p in OUT.iterdir()), {k: tuple(v.shape) for k, v in expected.items()})


if __name__ == "__main__":
    main()
