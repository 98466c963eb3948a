#!/usr/bin/env python3
"""Writes tests/fixtures/sae/dictionary_learning/{ae.pt,config.json,weights.json} without torch.

ae.pt is a torch zip-pickle (the layout `torch.save` writes) of a dictionary_learning
`AutoEncoder` state dict: encoder.weight [L, d], encoder.bias [L], decoder.weight [d, L],
bias [d], float32, each tensor in its own storage `archive/data/<key>`, rebuilt through
`torch._utils._rebuild_tensor_v2`. weights.json holds the same numbers as plain lists so that
the Rust test can compute expected values by hand. Pure Python (no torch, no numpy).
"""
import collections
import json
import pickle
import random
import struct
import sys
import types
import zipfile
from pathlib import Path

D, L = 6, 10
OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/sae/dictionary_learning"

# Stand-ins for the torch globals the pickle must name (pickle checks them by import).
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
FloatStorage.__qualname__ = FloatStorage.__name__ = "FloatStorage"
torch.FloatStorage = FloatStorage


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in only")


_rebuild_tensor_v2.__module__ = "torch._utils"
_rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class Storage:
    def __init__(self, key, values):
        self.key, self.values = key, values


class FakeTensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride = [1] * len(self.shape)
        for i in range(len(self.shape) - 2, -1, -1):
            stride[i] = stride[i + 1] * self.shape[i + 1]
        return (
            _rebuild_tensor_v2,
            (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()),
        )


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", len(obj.values))
        return None


def main():
    rng = random.Random(20240607)
    mat = lambda r, c, s: [[round(rng.gauss(0, s), 6) for _ in range(c)] for _ in range(r)]
    weights = {
        "encoder.weight": mat(L, D, 0.5),
        "encoder.bias": [round(rng.gauss(0, 0.1), 6) for _ in range(L)],
        "decoder.weight": mat(D, L, 0.5),
        "bias": [round(rng.gauss(0, 0.1), 6) for _ in range(D)],
    }
    state = collections.OrderedDict()
    storages = []
    for i, (name, value) in enumerate(weights.items()):
        flat = [x for row in value for x in row] if isinstance(value[0], list) else list(value)
        shape = [len(value), len(value[0])] if isinstance(value[0], list) else [len(value)]
        st = Storage(str(i), flat)
        storages.append(st)
        state[name] = FakeTensor(st, shape)
    OUT.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(OUT / "ae.pt", "w", zipfile.ZIP_STORED) as z:
        import io

        buf = io.BytesIO()
        TorchPickler(buf, protocol=2).dump(state)
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for st in storages:
            z.writestr(f"archive/data/{st.key}", struct.pack(f"<{len(st.values)}f", *st.values))
        z.writestr("archive/version", "3\n")
    config = {
        "trainer": {
            "dict_class": "AutoEncoder",
            "trainer_class": "StandardTrainer",
            "activation_dim": D,
            "dict_size": L,
            "lr": 1e-3,
            "l1_penalty": 0.1,
            "layer": 3,
            "lm_name": "EleutherAI/pythia-70m-deduped",
            "submodule_name": "resid_post_layer_3",
        },
        "buffer": {"d_submodule": D, "io": "out"},
    }
    (OUT / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (OUT / "weights.json").write_text(json.dumps(weights) + "\n")


if __name__ == "__main__":
    main()
