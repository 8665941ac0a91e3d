"""Row set-up, block merge and write-out shared by the IRT-BIN kernels (one per heap).

The kernels work on breadth-first positions: position ``i`` holds node
``order[i]``, and ``parent_pos[i] < i`` is its parent's position.
"""

from .jit import njit


@njit(cache=True)
def load_row(y, w, b, order, mean, weight, heap, merged):
    """Start row ``b``: every node is its own block with an empty heap."""
    n_w = w.shape[0]
    wr = 0 if n_w <= 1 else b
    for i in range(order.shape[0]):
        v = order[i]
        mean[i] = y[b, v]
        weight[i] = w[wr, v] if n_w > 0 else 1.0
        heap[i] = -1
        merged[i] = False


@njit(cache=True, inline="always")
def absorb(v, c, mean, weight, merged):
    """Merge block ``c`` into block ``v``: weighted mean by a convex-combination
    update (no large sums, no cancellation); ``c`` is marked as merged."""
    w_new = weight[v] + weight[c]
    mean[v] += (weight[c] / w_new) * (mean[c] - mean[v])
    weight[v] = w_new
    merged[c] = True


@njit(cache=True)
def write_row(b, order, parent_pos, mean, top, merged, x, blocks):
    """Finish row ``b``: parents before children, a merged node takes its
    parent's block; ``top`` (a spare index array) receives block tops, copied
    to ``blocks`` unless it is empty (0, n)."""
    with_blocks = blocks.shape[0] > 0
    for i in range(order.shape[0]):
        if merged[i]:
            p = parent_pos[i]
            mean[i] = mean[p]
            top[i] = top[p]
        else:
            top[i] = i
        v = order[i]
        x[b, v] = mean[i]
        if with_blocks:
            blocks[b, v] = order[top[i]]
