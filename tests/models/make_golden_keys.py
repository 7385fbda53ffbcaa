"""Writes torchvision_keys.json: state_dict keys and shapes (1000 classes) of torchvision's
resnet18/34/50 and mobilenet_v2, from pyvision_engine/benchmarks/torch_models.py, and of
resnet101, resnext50_32x4d, wide_resnet50_2 and mobilenet_v3_large/small, from torchvision
itself; each checked first against the parameter count torchvision documents for it (docs:
torchvision.models, "num_params").

    python tests/models/make_golden_keys.py
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DOCUMENTED_PARAMS = {"resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032,
                     "mobilenet_v2": 3504872}
# (built with torchvision: the hand-written twins do not cover these)
DOCUMENTED_TORCHVISION_PARAMS = {"resnet101": 44549160, "resnext50_32x4d": 25028904,
                                 "wide_resnet50_2": 68883240, "mobilenet_v3_large": 5483032,
                                 "mobilenet_v3_small": 2542856}


def main():
    from pyvision_engine.benchmarks import torch_models as tm

    import torchvision.models as tvm

    out = {}
    builders = [(name, count, lambda n: tm.build(n, 1000)) for name, count in DOCUMENTED_PARAMS.items()]
    builders += [(name, count, lambda n: getattr(tvm, n)())
                 for name, count in DOCUMENTED_TORCHVISION_PARAMS.items()]
    for name, count, build in builders:
        model = build(name)
        n = sum(p.numel() for p in model.parameters())
        assert n == count, (name, n, count)
        out[name] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    with open(os.path.join(HERE, "torchvision_keys.json"), "w") as f:
        json.dump(out, f, indent=0, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
