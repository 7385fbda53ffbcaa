"""Writes torchvision_keys.json: state_dict keys and shapes of torchvision's resnet18/34/50 and
mobilenet_v2 (1000 classes), from pyvision_engine/benchmarks/torch_models.py after checking each against the parameter
count torchvision documents for it (docs: torchvision.models, "num_params").

    python tests/models/make_golden_keys.py
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DOCUMENTED_PARAMS = {"resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032,
                     "mobilenet_v2": 3504872}


def main():
    from pyvision_engine.benchmarks import torch_models as tm

    out = {}
    for name, count in DOCUMENTED_PARAMS.items():
        model = tm.build(name, 1000)
        n = sum(p.numel() for p in model.parameters())
        assert n == count, (name, n, count)
        out[name] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    with open(os.path.join(HERE, "torchvision_keys.json"), "w") as f:
        json.dump(out, f, indent=0, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
