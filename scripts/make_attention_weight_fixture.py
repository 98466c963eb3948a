"""Reference numbers of pyvene's `attention_weight` interventions on the tiny GPT-2 fixture.

Run: /work/pyenv/bin/python scripts/make_attention_weight_fixture.py
Writes tests/fixtures/pyvene-attention/attention_weight.safetensors.

pyvene hooks `attention_weight` at the input of `h[L].attn.attn_dropout`. transformers 4.5x
calls that module only on GPT-2's `reorder_and_upcast_attn` path (the default eager path uses
the functional dropout, so pyvene's hook never fires there): the model is loaded with
`reorder_and_upcast_attn=True` (the same probabilities, computed in f32) and eager attention.

In pyvene, the locations of unit `pos` (and `h`) on `attention_weight` index dimension 1 of
`[batch, heads, query, key]`, the heads; `h.pos` gives (heads, query positions). Vanilla
interchange works for `pos` only (pyvene's scatter of `h`/`h.pos` fails on a 4-d tensor);
Collect works for all three.
"""

from pathlib import Path

import pyvene as pv
import torch
import transformers
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests/fixtures/pyvene/tiny-gpt2"
OUT = ROOT / "tests/fixtures/pyvene-attention/attention_weight.safetensors"


def intervenable(model, layer, unit, kind, n_units=1):
    config = pv.IntervenableConfig(
        [pv.RepresentationConfig(layer, "attention_weight", unit, n_units)],
        intervention_types=kind,
    )
    m = pv.IntervenableModel(config, model=model)
    m.disable_model_gradients()
    return m


def main():
    model = transformers.GPT2LMHeadModel.from_pretrained(
        MODEL, attn_implementation="eager", reorder_and_upcast_attn=True
    ).eval()
    g = torch.Generator().manual_seed(2024)
    base = torch.randint(0, 64, (2, 6), generator=g)
    src = torch.randint(0, 64, (2, 6), generator=g)
    out = {
        "base_input_ids": base.to(torch.int64),
        "source_input_ids": src.to(torch.int64),
    }
    with torch.no_grad():
        out["base_logits"] = model(base).logits.contiguous()
        # Collect: pos (heads), h (heads), h.pos (heads, query positions)
        heads = [[1], [0]]
        m = intervenable(model, 1, "pos", pv.CollectIntervention)
        (_, collected), _ = m({"input_ids": base}, unit_locations={"base": [heads]})
        out["collect_pos"] = collected[0].contiguous()
        m = intervenable(model, 1, "h", pv.CollectIntervention)
        (_, collected), _ = m({"input_ids": base}, unit_locations={"base": [heads]})
        out["collect_h"] = collected[0].contiguous()
        m = intervenable(model, 0, "h.pos", pv.CollectIntervention, 2)
        hpos = [[[1], [0]], [[5, 2], [3, 4]]]
        (_, collected), _ = m({"input_ids": base}, unit_locations={"base": [hpos]})
        out["collect_hpos"] = collected[0].contiguous()
        # Vanilla interchange of whole heads' probabilities: source heads -> base heads
        for layer in (0, 1):
            m = intervenable(model, layer, "pos", pv.VanillaIntervention)
            _, cf = m(
                {"input_ids": base},
                [{"input_ids": src}],
                unit_locations={"sources->base": ([[[0], [1]]], [[[1], [1]]])},
            )
            out[f"vanilla_pos_layer{layer}_logits"] = cf.logits.contiguous()
    save_file(out, str(OUT))
    for k, v in out.items():
        print(k, tuple(v.shape))


if __name__ == "__main__":
    main()
