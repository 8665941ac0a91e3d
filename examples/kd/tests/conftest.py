import pytest

from ._topk_ref import fit_topk_ref, topk_available


@pytest.fixture(autouse=True)
def _fit_topk_standin(monkeypatch):
    """Until ``treeiso.fit_topk`` lands, route it to the per-row reference (tests only)."""
    if not topk_available():
        import treeiso

        monkeypatch.setattr(treeiso, "fit_topk", fit_topk_ref, raising=False)
    yield
