import os

from hypothesis import HealthCheck, settings

# "ci": fixed seed, bounded time; "dev": many more examples for local runs.
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=200, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", deadline=None, max_examples=3000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ----------------------------------------------------------------------------- backends
# Every property test that takes the ``backend`` fixture runs on each backend, as POT's
# test suite does: NumPy/Numba, torch on the CPU, torch on CUDA (skipped without a device)
# and the SciPy reference (small problems only). ``backend.fit`` takes and returns NumPy.
import numpy as np  # noqa: E402
import pytest  # noqa: E402


class Backend:
    def __init__(self, name):
        self.name = name
        self.max_n = 25 if name == "scipy" else None

    def _torch(self):
        import torch

        return torch, ("cuda" if self.name == "torch-cuda" else "cpu")

    def domain(self, w):
        """The weights this backend is held to: the SciPy reference (BVLS squares the
        conditioning) to 1e-2 .. 1e2, the others to all of tests/strategies.py (1e-12 .. 1e12)."""
        if self.name != "scipy" or w is None:
            return w
        return np.exp(np.clip(np.log(w), np.log(1e-2), np.log(1e2)))

    def fit(self, y, tree, w=None, **kw):
        if self.name in ("numpy", "scipy"):
            if self.name == "scipy":
                kw["backend"] = "scipy"
            return treeiso_fit(y, tree, w, **kw)
        torch, dev = self._torch()
        yt = torch.as_tensor(np.asarray(y, dtype=np.float64), device=dev)
        wt = None if w is None else torch.as_tensor(np.asarray(w, np.float64), device=dev)
        return treeiso_fit(yt, tree, wt, **kw).cpu().numpy()

    def fit_topk(self, y, labels, w=None, **kw):
        import treeiso

        if self.name == "scipy":  # the reference solves each row's broom as a tree
            out = np.array(y, dtype=np.float64)
            for b in range(out.shape[0]):
                lab = [v for v in dict.fromkeys(int(v) for v in labels[b]) if v >= 0]
                if lab:
                    out[b] = treeiso.fit(y[b], broom_parent(y.shape[1], lab),
                                         None if w is None else w[b], backend="scipy", **kw)
            return out
        if self.name == "numpy":
            return treeiso.fit_topk(y, labels, w, **kw)
        torch, dev = self._torch()
        yt = torch.as_tensor(np.asarray(y, dtype=np.float64), device=dev)
        wt = None if w is None else torch.as_tensor(np.asarray(w, np.float64), device=dev)
        return treeiso.fit_topk(yt, torch.as_tensor(labels, device=dev), wt, **kw).cpu().numpy()


def broom_parent(c, handle):
    """Parent array of the broom: handle[0] -> handle[1] -> ... -> handle[-1] -> the rest."""
    parent = np.full(c, handle[-1])
    parent[handle[0]] = -1
    for a, b in zip(handle[:-1], handle[1:]):
        parent[b] = a
    return parent


def treeiso_fit(*args, **kw):
    import treeiso

    return treeiso.fit(*args, **kw)


def _backend_params():
    params = ["numpy", "scipy"]
    try:
        import torch
    except ImportError:
        return params
    params.append("torch-cpu")
    params.append(pytest.param("torch-cuda", marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]))
    return params


@pytest.fixture(params=_backend_params(), scope="session")
def backend(request):
    return Backend(request.param)
