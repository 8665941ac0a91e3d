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
