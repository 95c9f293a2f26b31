"""A k-d tree over one group's ground-truth points, with a count of free points per
node: the index of the lazy nearest-first search (kernels.candidates).

A search must cost about log n however the points lie. Points that coincide or crowd
into a speck, and regions emptied by the points a rule has already taken, would make
a grid scan the same points or cells again for every prediction: quadratic work from a
small file. The tree splits each node at the median of its wider axis, breaking equal
coordinates by point index, so even identical points spread over the leaves in index
order; a search never enters a node whose points are all taken (free count 0), that
lies beyond its reach, that lies wholly before its cursor, or wholly after the K
candidates it already holds.

Layout: an implicit complete binary tree (node i has children 2i+1 and 2i+2) over a
permutation of the points; node i holds perm[lo[i]:hi[i]], its bounding box and the
least and greatest point index in it. Bounds on a node's keys come from its box with
the very float64 operations of a point's key, so by the monotonicity of rounding they
bound every point's computed key: pruning never loses a point.
"""
import numpy as np

from .jit import njit

LEAF = 8  # points per leaf at most
STACK = 128  # nodes pending in a search: two per level at most, and depth < 64


@njit(cache=True)
def _before(c, a, b):
    """Point a before point b: by coordinate c, then by index."""
    return c[a] < c[b] or (c[a] == c[b] and a < b)


@njit(cache=True)
def _select(perm, c, lo, hi, k):
    """Reorder perm[lo:hi] so that perm[k] is its k-th point by (c, index), those
    before it smaller and those after it greater (quickselect, median-of-three)."""
    while hi - lo > 1:
        a, b, z = perm[lo], perm[(lo + hi) // 2], perm[hi - 1]
        if _before(c, b, a):
            a, b = b, a
        if _before(c, z, b):
            b = a if _before(c, z, a) else z
        pivot = b
        store = lo
        for t in range(lo, hi):
            if _before(c, perm[t], pivot):
                perm[store], perm[t] = perm[t], perm[store]
                store += 1
        for t in range(store, hi):
            if perm[t] == pivot:
                perm[store], perm[t] = perm[t], perm[store]
                break
        if k == store:
            return
        if k < store:
            hi = store
        else:
            lo = store + 1


@njit(cache=True)
def allocate(n):
    """Room for a tree over n points, not built yet: two arrays, (ints, floats), so
    that every search passes two arrays down rather than sixteen (each array argument
    costs a call its reference counting). ``_sections`` names their parts."""
    depth = 0
    while (n >> depth) > LEAF:
        depth += 1
    n_nodes = (1 << (depth + 1)) - 1
    ints = np.empty(3 + 6 * n_nodes + n + STACK, np.int64)
    ints[0], ints[1], ints[2] = n, n_nodes, 0
    return ints, np.empty(4 * n_nodes + 2 * n + STACK)


@njit(cache=True)
def _sections(tree):
    """Views of the tree's parts. Per node: lo, hi (its range of perm), min_g, max_g
    (least and greatest point index in it), size, free (points not taken), box x0, x1,
    y0, y1; per point: perm, px, py (coordinates in tree order, so a leaf's
    points lie side by side); a search's stack and the stack's lower bounds."""
    ints, floats = tree
    n, n_nodes = ints[0], ints[1]
    a = 3
    lo, hi = ints[a:a + n_nodes], ints[a + n_nodes:a + 2 * n_nodes]
    min_g, max_g = ints[a + 2 * n_nodes:a + 3 * n_nodes], ints[a + 3 * n_nodes:a + 4 * n_nodes]
    size, free = ints[a + 4 * n_nodes:a + 5 * n_nodes], ints[a + 5 * n_nodes:a + 6 * n_nodes]
    a += 6 * n_nodes
    perm, stack = ints[a:a + n], ints[a + n:]
    x0, x1 = floats[:n_nodes], floats[n_nodes:2 * n_nodes]
    y0, y1 = floats[2 * n_nodes:3 * n_nodes], floats[3 * n_nodes:4 * n_nodes]
    a = 4 * n_nodes
    px, py, stack_low = floats[a:a + n], floats[a + n:a + 2 * n], floats[a + 2 * n:]
    return (lo, hi, min_g, max_g, size, free, perm, stack,
            x0, x1, y0, y1, px, py, stack_low)


@njit(cache=True)
def built(tree):
    """Whether ``build`` has filled the tree."""
    return tree[0][2] != 0


@njit(cache=True)
def build(tree, x, y, taken):
    """Fill an allocated tree over the points (x, y), the points ``taken`` already not
    free."""
    (lo, hi, min_g, max_g, size, free, perm, _stack,
     x0, x1, y0, y1, px, py, _stack_low) = _sections(tree)
    n, n_nodes = x.size, lo.size
    first_leaf = n_nodes // 2
    # Element loops here, not slice copies: a slice copy compiles a shape check whose
    # error message costs a first run a second.
    for i in range(n):
        perm[i] = i
    lo[0], hi[0] = 0, n
    for node in range(n_nodes):
        a, b = lo[node], hi[node]
        size[node] = b - a
        x0[node] = x1[node] = y0[node] = y1[node] = 0.0
        min_g[node] = max_g[node] = 0
        if node < first_leaf:  # children cover the same range until split below
            lo[2 * node + 1] = hi[2 * node + 1] = lo[2 * node + 2] = hi[2 * node + 2] = a
        if a == b:
            continue
        p = perm[a]
        bx0 = bx1 = x[p]
        by0 = by1 = y[p]
        g0 = g1 = p
        for t in range(a + 1, b):
            p = perm[t]
            bx0, bx1 = min(bx0, x[p]), max(bx1, x[p])
            by0, by1 = min(by0, y[p]), max(by1, y[p])
            g0, g1 = min(g0, p), max(g1, p)
        x0[node], x1[node], y0[node], y1[node] = bx0, bx1, by0, by1
        min_g[node], max_g[node] = g0, g1
        if node < first_leaf:
            mid = (a + b) // 2
            _select(perm, x if bx1 - bx0 >= by1 - by0 else y, a, b, mid)
            lo[2 * node + 1], hi[2 * node + 1] = a, mid
            lo[2 * node + 2], hi[2 * node + 2] = mid, b
    for node in range(n_nodes - 1, -1, -1):  # free points, leaves up
        if node >= first_leaf:
            free[node] = 0
            for t in range(lo[node], hi[node]):
                free[node] += not taken[perm[t]]
        else:
            free[node] = free[2 * node + 1] + free[2 * node + 2]
    for i in range(n):
        px[i], py[i] = x[perm[i]], y[perm[i]]
    tree[0][2] = 1


@njit(cache=True)
def _recount(free, taken, perm, lo, hi, leaf):
    """Bring a leaf's free count, and its ancestors', down to its points not taken.

    The rules mark points taken in ``taken`` alone (telling the tree of every point
    they take would cost the common case, where the tree is never built, a call per
    match), so counts may run high, never low: a node counted empty is empty. A search
    recounts each leaf it opens, so a leaf emptied behind the tree's back costs one
    visit, after which the search prunes it and, once all of theirs are empty, its
    ancestors."""
    count = 0
    for t in range(lo[leaf], hi[leaf]):
        count += not taken[perm[t]]
    gone = free[leaf] - count
    if gone:
        node = leaf
        while True:
            free[node] -= gone
            if node == 0:
                return
            node = (node - 1) // 2


@njit(cache=True)
def free_all(tree):
    """Every point free again (as ``taken`` has just been cleared)."""
    if built(tree):
        size, free = _sections(tree)[4:6]
        for node in range(free.size):  # not a slice copy (see build)
            free[node] = size[node]


@njit(cache=True)
def _low(qx, qy, x0, x1, y0, y1, node):
    """The least key (d²) a point of the node can have from (qx, qy)."""
    near_x = qx - x1[node] if qx > x1[node] else (x0[node] - qx if qx < x0[node] else 0.0)
    near_y = qy - y1[node] if qy > y1[node] else (y0[node] - qy if qy < y0[node] else 0.0)
    return near_x * near_x + near_y * near_y


@njit(cache=True)
def _high(qx, qy, x0, x1, y0, y1, node):
    """The greatest key (d²) a point of the node can have from (qx, qy)."""
    far_x = max(qx - x0[node], x1[node] - qx)
    far_y = max(qy - y0[node], y1[node] - qy)
    return far_x * far_x + far_y * far_y


@njit(cache=True)
def offer(key, g, out_key, out_g, count, k, beyond):
    """Insert (key, g) into the sorted buffer of at most k entries; returns the count
    and the least key of the entries left out of the buffer so far (``beyond``)."""
    if count == k and (key > out_key[k - 1] or (key == out_key[k - 1] and g > out_g[k - 1])):
        return count, min(beyond, key)
    if count == k:  # the last entry makes room
        beyond = min(beyond, out_key[k - 1])
    i = count if count < k else k - 1
    while i > 0 and (out_key[i - 1] > key or (out_key[i - 1] == key and out_g[i - 1] > g)):
        out_key[i] = out_key[i - 1]
        out_g[i] = out_g[i - 1]
        i -= 1
    out_key[i] = key
    out_g[i] = g
    return min(count + 1, k), beyond


@njit(cache=True)
def offer_point(qx, qy, px, py, g, kmax, after_key, after_g, out_key, out_g, count, k,
                beyond):
    """Offer point g at (px, py) when it lies within kmax and after the cursor
    (after_key, after_g) in (key, index) order."""
    dx = qx - px
    dy = qy - py
    key = dx * dx + dy * dy
    if key <= kmax and (key > after_key or (key == after_key and g > after_g)):
        return offer(key, g, out_key, out_g, count, k, beyond)
    return count, beyond


@njit(cache=True)
def next_nearest(qx, qy, gx, gy, taken, tree, kmax, after_key, after_g, out_key, out_g):
    """The up to K = out_key.size smallest (d², g) after (after_key, after_g) with
    d² <= kmax and g not taken, sorted, into out_key/out_g. (Rules only ever take gts,
    so a gt skipped as taken would never have been usable later either.)

    Returns (count, complete, tied): complete when no further free gt lies within
    kmax; tied when one that follows them has the last one's d² (every point that
    could tie is looked at, or its node counted as a possible tie: a false alarm costs
    a search, a miss would cost the tie rule)."""
    (lo, hi, min_g, max_g, _size, free, perm, stack,
     x0, x1, y0, y1, tx, ty, stack_low) = _sections(tree)
    n_nodes = lo.size
    k = out_key.size
    count = np.int64(0)  # typed zeros: literal ones compile offer and _low once more each
    beyond = np.inf
    if free.size == 0 or free[0] == 0:
        return 0, True, False
    root = np.int64(0)
    stack[0] = root
    stack_low[0] = _low(qx, qy, x0, x1, y0, y1, root)
    sp = 1
    while sp:
        sp -= 1
        node, low = stack[sp], stack_low[sp]
        if free[node] == 0 or low > kmax:
            continue
        if after_key >= 0.0:  # a cursor: skip what lies wholly before it
            high = _high(qx, qy, x0, x1, y0, y1, node)
            if high < after_key or (high == after_key and max_g[node] <= after_g):
                continue
        if count == k and (low > out_key[k - 1] or (low == out_key[k - 1]
                                                    and min_g[node] > out_g[k - 1])):
            beyond = min(beyond, low)  # every point after the K held
            continue
        left = 2 * node + 1
        if left >= n_nodes:  # a leaf
            _recount(free, taken, perm, lo, hi, node)
            for t in range(lo[node], hi[node]):
                if not taken[perm[t]]:
                    count, beyond = offer_point(qx, qy, tx[t], ty[t], perm[t], kmax,
                                                after_key, after_g, out_key, out_g, count,
                                                k, beyond)
            continue
        right = left + 1
        left_low = _low(qx, qy, x0, x1, y0, y1, left)
        right_low = _low(qx, qy, x0, x1, y0, y1, right)
        # Nearer child on top; equally near: lower indices first (ties go by index).
        if right_low < left_low or (right_low == left_low and min_g[right] < min_g[left]):
            left, right, left_low, right_low = right, left, right_low, left_low
        stack[sp], stack_low[sp] = right, right_low
        stack[sp + 1], stack_low[sp + 1] = left, left_low
        sp += 2
    return count, count < k, count == k and beyond == out_key[k - 1]


@njit(cache=True)
def last_within(qx, qy, taken, tree, kmax):
    """The free point with the greatest index among those with d² <= kmax, or -1: with
    kmax the least d² of any free point, the last of the equally nearest (AP's tie
    rule), found without walking through the ties. Nodes are opened greatest index
    first, and skipped when they hold no free point, lie beyond kmax or hold no index
    above the best found."""
    (lo, hi, _min_g, max_g, _size, free, perm, stack,
     x0, x1, y0, y1, tx, ty, _stack_low) = _sections(tree)
    n_nodes = lo.size
    best = -1
    stack[0] = 0
    sp = 1
    while sp:
        sp -= 1
        node = stack[sp]
        if free[node] == 0 or max_g[node] <= best \
                or _low(qx, qy, x0, x1, y0, y1, node) > kmax:
            continue
        left = 2 * node + 1
        if left >= n_nodes:  # a leaf
            _recount(free, taken, perm, lo, hi, node)
            for t in range(lo[node], hi[node]):
                g = perm[t]
                if g > best and not taken[g]:
                    dx = qx - tx[t]
                    dy = qy - ty[t]
                    if dx * dx + dy * dy <= kmax:
                        best = g
            continue
        right = left + 1
        if max_g[left] > max_g[right]:  # the greater indices on top
            left, right = right, left
        stack[sp], stack[sp + 1] = left, right
        sp += 2
    return best
