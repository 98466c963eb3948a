#!/usr/bin/env python3
"""Writes tests/fixtures/pytorch-bin/: the fixture tiny models saved as PyTorch checkpoints.

- tiny-gpt2/pytorch_model.bin: the tensors of tests/fixtures/pyvene/tiny-gpt2/model.safetensors
  saved with torch.save (zip format). Two tensors exercise what real checkpoints hold: one
  weight is stored Fortran-ordered (a transposed view of a contiguous buffer), and the biases
  of layer 0's attention are views into one shared storage at nonzero element offsets.
- tiny-llama/pytorch_model.bin.index.json + two shards: tiny-llama's tensors split in two.

Values are bit-identical to the safetensors fixtures, so the Rust tests compare logits exactly.
Run with a Python that has torch and safetensors: /work/pyenv/bin/python scripts/make_pytorch_bin_fixture.py
"""
import collections
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests/fixtures/pyvene"
OUT = ROOT / "tests/fixtures/pytorch-bin"


def gpt2():
    out = OUT / "tiny-gpt2"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(SRC / "tiny-gpt2/config.json", out / "config.json")
    w = load_file(SRC / "tiny-gpt2/model.safetensors")
    sd = collections.OrderedDict()
    for k in sorted(w):
        sd[k] = w[k].clone()
    # Fortran-ordered: same values, column-major storage.
    fortran = [k for k in sd if k.endswith("attn.c_attn.weight")][0]
    sd[fortran] = sd[fortran].t().contiguous().t()
    assert not sd[fortran].is_contiguous()
    # Two biases in one storage, the second at a nonzero offset.
    a = [k for k in sd if k.endswith("h.0.attn.c_attn.bias")][0]
    b = [k for k in sd if k.endswith("h.0.attn.c_proj.bias")][0]
    shared = torch.cat([sd[a], sd[b]])
    sd[a] = shared[: sd[a].numel()]
    sd[b] = shared[sd[a].numel():]
    assert sd[b].storage_offset() > 0
    torch.save(sd, out / "pytorch_model.bin")


def llama():
    out = OUT / "tiny-llama"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(SRC / "tiny-llama/config.json", out / "config.json")
    w = load_file(SRC / "tiny-llama/model.safetensors")
    names = sorted(w)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate([names[:half], names[half:]]):
        shard = f"pytorch_model-0000{i + 1}-of-00002.bin"
        torch.save(collections.OrderedDict((k, w[k].clone()) for k in part), out / shard)
        weight_map.update({k: shard for k in part})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in w.values())},
             "weight_map": weight_map}
    (out / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=1, sort_keys=True))


if __name__ == "__main__":
    gpt2()
    llama()
