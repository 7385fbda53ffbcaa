"""pve.data: datasets, samplers, the DataLoader, transforms and built-in data.

torch.utils.data's and torchvision's names: ``Dataset``, ``TensorDataset``,
``DataLoader``, ``transforms.Compose`` ... plus ``datasets.Digits`` (shipped
inside the package) and readers for MNIST, CIFAR and image folders.
"""

from pyvision_engine.data._augment import crop_flip_normalize_batch, uint8_hwc_to_normalized_chw
from pyvision_engine.data.dataloader import (
    DataLoader, batch_generator, default_collate, default_convert, get_worker_info,
)
from pyvision_engine.data.dataset import (
    ArrayImageDataset, ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset,
    random_split,
)
from pyvision_engine.data.sampler import (
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
    WeightedRandomSampler,
)
from pyvision_engine.data import transforms  # noqa: E402
from pyvision_engine.data import datasets  # noqa: E402

__all__ = [
    "Dataset", "IterableDataset", "ChainDataset", "TensorDataset", "ArrayImageDataset", "Subset", "ConcatDataset",
    "random_split", "DataLoader", "default_collate", "default_convert", "get_worker_info", "batch_generator",
    "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler",
    "transforms", "datasets", "uint8_hwc_to_normalized_chw", "crop_flip_normalize_batch",
]
