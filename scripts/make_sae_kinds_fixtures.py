#!/usr/bin/env python3
"""Writes tests/fixtures/sae/dictionary_learning_{gated,jumprelu,batchtopk,matryoshka}/ with torch.

Each folder holds `ae.pt` (`torch.save` of the state dict of dictionary_learning's
GatedAutoEncoder, JumpReluAutoEncoder, BatchTopKSAE or MatryoshkaBatchTopKSAE, with the exact parameter and buffer
names and dtypes those classes register), `config.json` (the trainer config those trainers
write, `dict_class` included) and `weights.json` (the same numbers as plain lists, so the
Rust tests can compute the expected values by hand without reading ae.pt).

Run with a Python that has torch: `/work/pyenv/bin/python scripts/make_sae_kinds_fixtures.py`.
The classes themselves are not needed: only the state dict layout matters.
"""
import json
from pathlib import Path

import torch as t

D, L = 4, 6
ROOT = Path(__file__).resolve().parent.parent / "tests/fixtures/sae"


def rnd(gen, *shape, scale=0.5):
    return (t.randn(*shape, generator=gen) * scale).to(t.float32)


def write(name, state, trainer):
    out = ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    t.save(state, out / "ae.pt")
    cfg = {"trainer": {**trainer, "activation_dim": D, "dict_size": L, "layer": 2,
                       "lm_name": "EleutherAI/pythia-70m-deduped",
                       "submodule_name": "resid_post_layer_2"}}
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    plain = {k: v.tolist() for k, v in state.items()}
    (out / "weights.json").write_text(json.dumps(plain, indent=1) + "\n")


def main():
    g = t.Generator().manual_seed(20251202)
    # GatedAutoEncoder: encoder (no bias), decoder (no bias), decoder_bias, r_mag, gate_bias,
    # mag_bias (state_dict order of the class)
    gated = {
        "decoder_bias": rnd(g, D, scale=0.2),
        "r_mag": rnd(g, L, scale=0.3),
        "gate_bias": rnd(g, L, scale=0.3),
        "mag_bias": rnd(g, L, scale=0.3),
        "encoder.weight": rnd(g, L, D),
        "decoder.weight": rnd(g, D, L),
    }
    write("dictionary_learning_gated", gated,
          {"dict_class": "GatedAutoEncoder", "trainer_class": "GatedSAETrainer"})
    # BatchTopKSAE: buffers k (int32) and threshold (float32 scalar), encoder with bias,
    # decoder without, b_dec
    batch = {
        "k": t.tensor(2, dtype=t.int32),
        "threshold": t.tensor(0.25, dtype=t.float32),
        "decoder.weight": rnd(g, D, L),
        "encoder.weight": rnd(g, L, D),
        "encoder.bias": rnd(g, L, scale=0.2),
        "b_dec": rnd(g, D, scale=0.2),
    }
    write("dictionary_learning_batchtopk", batch,
          {"dict_class": "BatchTopKSAE", "trainer_class": "BatchTopKTrainer", "k": 2})
    # MatryoshkaBatchTopKSAE: k, threshold, group_sizes buffers, W_enc [D, L], b_enc,
    # W_dec [L, D], b_dec
    matry = {
        "k": t.tensor(2, dtype=t.int32),
        "threshold": t.tensor(0.2, dtype=t.float32),
        "group_sizes": t.tensor([2, 4]),
        "W_enc": rnd(g, D, L),
        "b_enc": rnd(g, L, scale=0.2),
        "W_dec": rnd(g, L, D),
        "b_dec": rnd(g, D, scale=0.2),
    }
    write("dictionary_learning_matryoshka", matry,
          {"dict_class": "MatryoshkaBatchTopKSAE",
           "trainer_class": "MatryoshkaBatchTopKTrainer", "k": 2, "group_sizes": [2, 4]})

    # JumpReluAutoEncoder: plain parameters W_enc [D, L], b_enc, W_dec [L, D], b_dec,
    # threshold [L]; apply_b_dec_to_input is an attribute (False), not saved
    jump = {
        "W_enc": rnd(g, D, L),
        "b_enc": rnd(g, L, scale=0.2),
        "W_dec": rnd(g, L, D),
        "b_dec": rnd(g, D, scale=0.2),
        "threshold": rnd(g, L, scale=0.3).abs(),
    }
    write("dictionary_learning_jumprelu", jump,
          {"dict_class": "JumpReluAutoEncoder", "trainer_class": "JumpReluTrainer"})


if __name__ == "__main__":
    main()
