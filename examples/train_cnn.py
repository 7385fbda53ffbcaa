"""Define, train and save a small CNN on the built-in digits (the README's example).

    python examples/train_cnn.py
"""
import pyvision_engine as pve
from pyvision_engine import nn, data
from pyvision_engine.data.datasets import Digits
from pyvision_engine.data.transforms import BatchAugment

pve.manual_seed(0)                                    # same seed -> same weights, batches, result
aug = BatchAugment(Digits.MEAN, Digits.STD, crop_size=8, padding=1)   # per batch, in Cython
train = data.DataLoader(Digits(train=True, transform=aug), batch_size=64, shuffle=True)
test = data.DataLoader(Digits(train=False, transform=BatchAugment(Digits.MEAN, Digits.STD)), batch_size=256)
model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
optimizer = pve.optim.Adam(model.parameters(), lr=1e-2)
pve.train.fit(model, train, optimizer, nn.CrossEntropyLoss(), epochs=20, val_loader=test)
print(pve.train.evaluate(model, test)["accuracy"])   # ~0.98; also top5, confusion_matrix
pve.save(model.state_dict(), "digits_cnn.safetensors")
