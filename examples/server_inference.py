"""Serve a model from several Python threads at once (the kernels release the GIL).

    python examples/server_inference.py
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import pyvision_engine as pve

pve.set_num_threads(1)                    # one OpenMP thread per request thread: no oversubscription
model = pve.models.resnet18(num_classes=10).eval()   # eval(): BatchNorm uses running statistics


@pve.no_grad()
def handle(batch: np.ndarray) -> np.ndarray:
    return pve.train.predict(model, batch, topk=1)[1][:, 0]   # class indices


requests = [np.random.rand(1, 3, 224, 224).astype(np.float32) for _ in range(8)]
with ThreadPoolExecutor(max_workers=2) as pool:   # 2 request threads on 2 cores
    print(list(pool.map(handle, requests)))
