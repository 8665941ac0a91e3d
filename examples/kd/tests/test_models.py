import pytest
import torch

from examples.kd.models import MODEL_NAMES, build_model


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape(name):
    m = build_model(name, 7).eval()
    with torch.no_grad():
        assert m(torch.zeros(2, 3, 16, 16)).shape == (2, 7)


def test_depths_and_errors():
    n_conv = lambda m: sum(isinstance(x, torch.nn.Conv2d) and x.kernel_size == (3, 3) for x in m.modules())  # noqa
    assert n_conv(build_model("resnet20", 10)) + 1 == 20  # 19 3x3 convs + the fc layer
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg", 10)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("imagenet_resnet50", 10)


TABLE1_ARCHS = ["resnet18", "resnet50", "resnet101", "resnext50", "googlenet", "densenet121",
                "seresnet18", "seresnet101"]


@pytest.mark.parametrize("name", TABLE1_ARCHS + ["imagenet_resnet18", "imagenet_resnet34"])
def test_one_training_step(name):
    """Each architecture trains one SGD step at 32x32: every parameter gets a finite gradient and
    moves, and the penultimate features have ``feat_dim`` entries."""
    torch.manual_seed(0)
    m = build_model(name, 10).train()
    before = {k: v.detach().clone() for k, v in m.named_parameters()}
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    f, out = m(torch.randn(2, 3, 32, 32), return_features=True)
    assert f.shape == (2, m.feat_dim) and out.shape == (2, 10)
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 7])).backward()
    missing = [k for k, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    opt.step()
    assert all(not torch.equal(before[k], p) for k, p in m.named_parameters() if "bias" not in k or "fc" in k)


# Published parameter counts of the ImageNet models (1000 classes), from torchvision's model
# documentation and Hu et al. (2018) for SE-ResNet-101 (49.3M). The CIFAR variants differ from
# them only in the stem: a 3x3 conv (3*64*9 weights) instead of a 7x7 conv (3*64*49), i.e.
# 7680 fewer weights; DenseNet-121 also drops the stem's batch norm (128 parameters).
PUBLISHED = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
             "resnet101": 44_549_160, "resnext50": 25_028_904, "densenet121": 7_978_856}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_published_architectures(name):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    stem = 7680 + (128 if name == "densenet121" else 0)
    assert count(build_model(name, 1000)) == PUBLISHED[name] - stem
    if name in ("resnet18", "resnet34"):
        assert count(build_model("imagenet_" + name, 1000)) == PUBLISHED[name]


def test_se_and_grouped_blocks():
    se = build_model("seresnet101", 1000)
    assert abs(sum(p.numel() for p in se.parameters()) / 1e6 - 49.3) < 0.05  # Hu et al. (2018), Table 2
    blocks = [b for b in se.modules() if type(b).__name__ == "Bottleneck"]
    assert len(blocks) == 33 and all(b.se.fc1.out_channels == b.bn3.num_features // 16 for b in blocks)
    rx = build_model("resnext50", 10)
    grouped = [c for c in rx.modules() if isinstance(c, torch.nn.Conv2d) and c.groups > 1]
    assert len(grouped) == 16 and all(c.groups == 32 for c in grouped)
    assert [c.in_channels // 32 for c in grouped[::4]][:1] == [4]  # 32 groups x 4 channels ("32x4d")
    g = build_model("googlenet", 10)
    assert sum(type(x).__name__ == "Inception" for x in g.modules()) == 9
    d = build_model("densenet121", 10)
    assert sum(type(x).__name__ == "_DenseLayer" for x in d.modules()) == 6 + 12 + 24 + 16
    assert d.feat_dim == 1024
