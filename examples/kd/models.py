"""Networks used in the distillation study, written here (no torchvision).

Why not torchvision: the PyPI torchvision wheel that pins ``torch==2.13.0`` (0.28.0) does not
import beside the CPU build of torch 2.13.0 that the README's first command installs
(``RuntimeError: operator torchvision::nms does not exist``), so it cannot be a dependency of
that command. The definitions below follow the published architectures layer for layer.

* CIFAR ResNets of He et al. (2016), Sec. 4.2: a 3x3 stem, three stages of BasicBlocks
  (16, 32, 64 channels), depth 6n + 2: ``resnet8/20/32/56/110``; the wide variants used by
  RepDistiller-style benchmarks, ``resnet8x4`` and ``resnet32x4`` (stem 32, stages 64/128/256).
* The "CIFAR ResNet18/50/101" used in the paper's CIFAR-100 tables: the ImageNet block layout
  with a 3x3 stride-1 stem and no max-pool (stages 64/128/256/512).
* ImageNet ResNet18/34: 7x7 stride-2 stem and 3x3 max-pool (He et al. 2016, Table 1).
* The other teachers and students of the paper's Table 1, CIFAR variants (3x3 stride-1 stem, no
  max-pool in the stem): ``resnext50`` (ResNeXt-50 32x4d, Xie et al. 2017), ``seresnet18`` and
  ``seresnet101`` (squeeze-and-excitation on every residual branch, reduction 16, Hu et al.
  2018), ``densenet121`` (growth 32, blocks 6/12/24/16, bottleneck 4k, compression 0.5, Huang
  et al. 2017) and ``googlenet`` (Inception-v1, Szegedy et al. 2015, with batch norm, 1x1/3x3/5x5
  and pool branches of the published widths 3a..5b; the stem is one 3x3 conv to 192 channels and
  the two max-pools between the inception stages are kept; no auxiliary classifiers).

Every model maps (N, 3, H, W) images to (N, num_classes) logits and works for any H, W >= 8
(global average pooling). ``model(x, return_features=True)`` returns ``(features, logits)`` with
the penultimate (pooled) features, of size ``model.feat_dim`` (used by CRD).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["build_model", "MODEL_NAMES"]


def _bn(c):
    return nn.BatchNorm2d(c)


class SE(nn.Module):
    """Squeeze-and-excitation: channel weights ``sigmoid(W2 relu(W1 avgpool(x)))``, reduction r."""

    def __init__(self, c, r=16):
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(1, c // r), 1)
        self.fc2 = nn.Conv2d(max(1, c // r), c, 1)

    def forward(self, x):
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * w


def _add_se_and_shortcut(block, cin, cout, stride, se):
    """A residual block's squeeze-excitation (or identity) and its shortcut: the identity, or a
    1x1 convolution with batch norm where the stride or the width changes."""
    block.se = SE(cout) if se else nn.Identity()
    block.shortcut = nn.Sequential()
    if stride != 1 or cin != cout:
        block.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, cout, stride=1, se=False, groups=1, base_width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _bn(cout)
        _add_se_and_shortcut(self, cin, cout, stride, se)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (``groups``; ResNeXt width ``planes * base_width / 64 * groups``) -> 1x1 (4x)."""

    expansion = 4

    def __init__(self, cin, planes, stride=1, se=False, groups=1, base_width=64):
        super().__init__()
        width = int(planes * base_width / 64) * groups
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = _bn(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = _bn(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = _bn(cout)
        _add_se_and_shortcut(self, cin, cout, stride, se)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return F.relu(out + self.shortcut(x))


def _init(model):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _Net(nn.Module):
    """``features(x)`` -> pooled penultimate features; ``forward`` adds the linear classifier."""

    def forward(self, x, return_features=False):
        f = self.features(x)
        out = self.fc(f)
        return (f, out) if return_features else out


def _stem(stem, width):
    if stem == "cifar":
        return nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), _bn(width), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), _bn(width), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1))


class ResNet(_Net):
    """Generic ResNet/ResNeXt/SE-ResNet: ``stem`` ('cifar' 3x3/1 or 'imagenet' 7x7/2 + max-pool),
    stages of blocks."""

    def __init__(self, block, blocks, widths, num_classes, stem_width, stem="cifar", se=False, groups=1,
                 base_width=64):
        super().__init__()
        self.stem = _stem(stem, stem_width)
        layers, cin = [], stem_width
        for i, (n, w) in enumerate(zip(blocks, widths)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(block(cin, w, stride, se=se, groups=groups, base_width=base_width))
                cin = w * block.expansion
        self.layers = nn.Sequential(*layers)
        self.feat_dim = cin
        self.fc = nn.Linear(cin, num_classes)
        _init(self)

    def features(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)


class _DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.bn1, self.conv1 = _bn(cin), nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.bn2, self.conv2 = _bn(bn_size * growth), nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        return torch.cat([x, self.conv2(F.relu(self.bn2(out)))], 1)


class DenseNet(_Net):
    """DenseNet-BC (pre-activation dense layers, 1x1 bottleneck ``bn_size * growth``, transitions
    BN-ReLU-1x1 conv (x``compression``)-avgpool 2); CIFAR stem: one 3x3 conv to ``2 growth``."""

    def __init__(self, blocks=(6, 12, 24, 16), growth=32, bn_size=4, compression=0.5, num_classes=100):
        super().__init__()
        c = 2 * growth
        self.stem = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        layers = []
        for i, n in enumerate(blocks):
            for _ in range(n):
                layers.append(_DenseLayer(c, growth, bn_size))
                c += growth
            if i < len(blocks) - 1:
                out = int(c * compression)
                layers += [_bn(c), nn.ReLU(inplace=True), nn.Conv2d(c, out, 1, bias=False), nn.AvgPool2d(2)]
                c = out
        self.layers = nn.Sequential(*layers, _bn(c), nn.ReLU(inplace=True))
        self.feat_dim = c
        self.fc = nn.Linear(c, num_classes)
        _init(self)
        nn.init.zeros_(self.fc.bias)

    def features(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)


def _cbr(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, 1, k // 2, bias=False), _bn(cout), nn.ReLU(inplace=True))


class Inception(nn.Module):
    """Inception-v1 module: 1x1 | 1x1->3x3 | 1x1->5x5 | 3x3 max-pool->1x1, concatenated."""

    def __init__(self, cin, c1, c3r, c3, c5r, c5, cp):
        super().__init__()
        self.b1 = _cbr(cin, c1, 1)
        self.b3 = nn.Sequential(_cbr(cin, c3r, 1), _cbr(c3r, c3, 3))
        self.b5 = nn.Sequential(_cbr(cin, c5r, 1), _cbr(c5r, c5, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), _cbr(cin, cp, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


#: Inception-v1's modules 3a..5b (Szegedy et al. 2015, Table 1): in, 1x1, 3x3 reduce, 3x3,
#: 5x5 reduce, 5x5, pool proj; "M" is a 3x3 stride-2 max-pool.
_INCEPTION = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), "M",
              (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
              (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
              (528, 256, 160, 320, 32, 128, 128), "M",
              (832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128)]


class GoogLeNet(_Net):
    """Inception-v1 with batch norm, CIFAR stem (3x3 conv to 192 channels, no stem pooling)."""

    def __init__(self, num_classes=100):
        super().__init__()
        self.stem = _cbr(3, 192, 3)
        mods = [nn.MaxPool2d(3, 2, 1) if m == "M" else Inception(*m) for m in _INCEPTION]
        self.layers = nn.Sequential(*mods)
        self.feat_dim = 1024
        self.fc = nn.Linear(1024, num_classes)
        _init(self)

    def features(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)


def _cifar(depth, k=1):
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    stem = 16 if k == 1 else 32
    return dict(block=BasicBlock, blocks=[n] * 3, widths=[16 * k, 32 * k, 64 * k], stem_width=stem)


_W = [64, 128, 256, 512]
_RESNET_LAYOUTS = {
    "resnet8": _cifar(8), "resnet14": _cifar(14), "resnet20": _cifar(20), "resnet32": _cifar(32),
    "resnet44": _cifar(44), "resnet56": _cifar(56), "resnet110": _cifar(110),
    "resnet8x4": _cifar(8, 4), "resnet32x4": _cifar(32, 4),
    "resnet18": dict(block=BasicBlock, blocks=[2, 2, 2, 2], widths=_W, stem_width=64),
    "resnet34": dict(block=BasicBlock, blocks=[3, 4, 6, 3], widths=_W, stem_width=64),
    "resnet50": dict(block=Bottleneck, blocks=[3, 4, 6, 3], widths=_W, stem_width=64),
    "resnet101": dict(block=Bottleneck, blocks=[3, 4, 23, 3], widths=_W, stem_width=64),
    "resnext50": dict(block=Bottleneck, blocks=[3, 4, 6, 3], widths=_W, stem_width=64, groups=32, base_width=4),
    "seresnet18": dict(block=BasicBlock, blocks=[2, 2, 2, 2], widths=_W, stem_width=64, se=True),
    "seresnet101": dict(block=Bottleneck, blocks=[3, 4, 23, 3], widths=_W, stem_width=64, se=True),
}
_OTHER = {"densenet121": lambda nc: DenseNet((6, 12, 24, 16), 32, 4, 0.5, nc),
          "googlenet": lambda nc: GoogLeNet(nc)}
MODEL_NAMES = sorted(list(_RESNET_LAYOUTS) + list(_OTHER)) + ["imagenet_resnet18", "imagenet_resnet34"]


def build_model(name: str, num_classes: int) -> nn.Module:
    """Build a network by name.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`. ``resnet18/34/50/101``, ``resnext50``, ``seresnet18/101``,
        ``densenet121`` and ``googlenet`` are the CIFAR variants (3x3 stride-1 stem, no stem
        max-pool); ``imagenet_resnet18/34`` use the 7x7 stride-2 stem and max-pool.
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
    if key in _OTHER:
        return _OTHER[key](num_classes)
    if key not in _RESNET_LAYOUTS:
        raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}")
    return ResNet(num_classes=num_classes, stem=stem, **_RESNET_LAYOUTS[key])
