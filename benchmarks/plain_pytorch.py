"""The course MLP job in plain PyTorch: the yardstick `pipeline_speed.py` times `charrec train`
against. Reads a course-layout dataset, trains nn.Linear + F.cross_entropy with SGD momentum,
validates every epoch, keeps the best weights, saves them.

    python benchmarks/plain_pytorch.py DATA_DIR OUT.pth [--epochs 50] [--hidden 64]
"""

import argparse
import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("data_dir", type=Path)
parser.add_argument("out", type=Path)
parser.add_argument("--epochs", type=int, default=50)
parser.add_argument("--hidden", type=int, default=64)
args = parser.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)


def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    labels = json.loads((args.data_dir / f"{split}.json").read_text())
    pixels = [torch.frombuffer(bytearray(Image.open(args.data_dir / "images" / name).convert("L")
                                         .resize((32, 32), Image.BILINEAR).tobytes()),
                               dtype=torch.uint8) for name in labels]
    x = torch.stack(pixels).float().view(-1, 32, 32)
    low, high = x.amin((1, 2), keepdim=True), x.amax((1, 2), keepdim=True)
    x = (x - low) / (high - low).clamp_min(1) * 2 - 1
    y = torch.tensor([ord(letter.upper()) - ord("A") for letter in labels.values()])
    return x, y


(train_x, train_y), (val_x, val_y) = load("train"), load("validation")
model = nn.Sequential(nn.Flatten(), nn.Linear(1024, args.hidden), nn.ReLU(),
                      nn.Linear(args.hidden, 26))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
best, best_state = -1.0, None
for _epoch in range(args.epochs):
    model.train()
    for index in torch.randperm(len(train_x)).split(64):
        loss = F.cross_entropy(model(train_x[index]), train_y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(val_x).argmax(1) == val_y).float().mean().item()
    if accuracy > best:
        best, best_state = accuracy, copy.deepcopy(model.state_dict())
torch.save(best_state, args.out)
print(json.dumps({"best_val_accuracy": best}))
