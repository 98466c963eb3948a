"""Writes tests/fixtures/pca/pyvene_pca_forward.json: pyvene's PCARotatedSpaceIntervention
forward on fixed inputs, for vene's tests (crates/vene-interventions/tests/pca.rs).

pyvene takes a fitted sklearn PCA through its `pca` kwarg and reads only `pca.components_`;
a namespace holding fixed orthonormal components stands in for it, so the numbers are
pyvene's own forward. Run: /work/pyenv/bin/python scripts/make_pca_fixture.py
"""

import json
import os
import types

import torch
from pyvene.models.interventions import PCARotatedSpaceIntervention

torch.manual_seed(7)
d, k = 5, 3
q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
components = q[:, :k].T.contiguous().float()  # [k, d], orthonormal rows
mean = torch.randn(d).float()
std = (torch.rand(d) + 0.5).float()
base = torch.randn(2, 2, d).float()
source = torch.randn(2, 2, d).float()

iv = PCARotatedSpaceIntervention(
    embed_dim=d,
    pca=types.SimpleNamespace(components_=components.numpy()),
    pca_mean=mean.numpy(),
    pca_std=std.numpy(),
)

cases = {}
with torch.no_grad():
    # default: interchange_dim = embed_dim, every component swapped
    cases["default"] = iv(base.clone(), source.clone()).tolist()
    # the same components for every example
    cases["dims_0_2"] = iv(base.clone(), source.clone(), subspaces=[[0, 2], [0, 2]]).tolist()
    # different components per example
    cases["per_example"] = iv(base.clone(), source.clone(), subspaces=[[1], [0, 2]]).tolist()
    # the first component only, by interchange_dim
    iv.set_interchange_dim(1)
    cases["interchange_dim_1"] = iv(base.clone(), source.clone()).tolist()

out = {
    "generator": "scripts/make_pca_fixture.py (pyvene PCARotatedSpaceIntervention.forward)",
    "components": components.tolist(),
    "mean": mean.tolist(),
    "std": std.tolist(),
    "base": base.tolist(),
    "source": source.tolist(),
    "outputs": cases,
}
path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "pca", "pyvene_pca_forward.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", os.path.normpath(path))
