"""Networks used in the distillation study, written here (no torchvision).

* CIFAR ResNets of He et al. (2016), Sec. 4.2: a 3x3 stem, three stages of BasicBlocks
  (16, 32, 64 channels), depth 6n + 2: ``resnet8/20/32/56/110``; the wide variants used by
  RepDistiller-style benchmarks, ``resnet8x4`` and ``resnet32x4`` (stem 32, stages 64/128/256).
* The "CIFAR ResNet18/50/101" used in the paper's CIFAR-100 tables: the ImageNet block layout
  with a 3x3 stride-1 stem and no max-pool (stages 64/128/256/512).
* ImageNet ResNet18/34: 7x7 stride-2 stem and 3x3 max-pool.

Every model maps (N, 3, H, W) images to (N, num_classes) logits and works for any H, W >= 8
(global average pooling).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["build_model", "MODEL_NAMES"]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Generic ResNet: ``stem`` ('cifar' 3x3/1 or 'imagenet' 7x7/2 + max-pool), stages of blocks."""

    def __init__(self, block, blocks, widths, num_classes, stem_width, stem="cifar"):
        super().__init__()
        if stem == "cifar":
            self.stem = nn.Sequential(nn.Conv2d(3, stem_width, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, stem_width, 7, 2, 3, bias=False),
                                      nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
        layers, cin = [], stem_width
        for i, (n, w) in enumerate(zip(blocks, widths)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(block(cin, w, stride))
                cin = w * block.expansion
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _cifar(depth, k=1):
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    stem = 16 if k == 1 else 32
    return dict(block=BasicBlock, blocks=[n] * 3, widths=[16 * k, 32 * k, 64 * k], stem_width=stem)


_SPECS = {
    "resnet8": _cifar(8), "resnet14": _cifar(14), "resnet20": _cifar(20), "resnet32": _cifar(32),
    "resnet44": _cifar(44), "resnet56": _cifar(56), "resnet110": _cifar(110),
    "resnet8x4": _cifar(8, 4), "resnet32x4": _cifar(32, 4),
    "resnet18": dict(block=BasicBlock, blocks=[2, 2, 2, 2], widths=[64, 128, 256, 512], stem_width=64),
    "resnet34": dict(block=BasicBlock, blocks=[3, 4, 6, 3], widths=[64, 128, 256, 512], stem_width=64),
    "resnet50": dict(block=Bottleneck, blocks=[3, 4, 6, 3], widths=[64, 128, 256, 512], stem_width=64),
    "resnet101": dict(block=Bottleneck, blocks=[3, 4, 23, 3], widths=[64, 128, 256, 512], stem_width=64),
}
MODEL_NAMES = sorted(_SPECS) + ["imagenet_resnet18", "imagenet_resnet34"]


def build_model(name: str, num_classes: int) -> nn.Module:
    """Build a network by name.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`. ``resnet18/34/50/101`` are the CIFAR variants (3x3 stem, no
        max-pool); ``imagenet_resnet18/34`` use the 7x7 stem and max-pool.
    num_classes : int
        Size of the output layer.

    Examples
    --------
    >>> import torch
    >>> build_model("resnet8", 10)(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
    """
    stem = "cifar"
    key = name.lower()
    if key.startswith("imagenet_"):
        key, stem = key[len("imagenet_"):], "imagenet"
        if key not in ("resnet18", "resnet34"):
            raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}")
    if key not in _SPECS:
        raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}")
    return ResNet(num_classes=num_classes, stem=stem, **_SPECS[key])
