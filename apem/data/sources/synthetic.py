"""Synthetic funnels with known true probabilities (the oracle every model is measured against).

Generative story (all parameters drawn from ``seed``):

- field f takes ids ``1..V_f`` with Zipf-like popularity ``P(k) ≈ k^-zipf_exponent`` (the
  floor of a power-law draw on [1, V_f + 1); id 0, the OOV id, never occurs);
- the value of field 0 decides a latent *segment* of the sample (``num_segments`` of them), and
  each segment has its own set of relevant fields, so which fields matter differs per sample;
- a component ``u_c(x)`` sums, over the segment's relevant fields, per-value main effects and
  the dot products of per-value embeddings of every pair of fields (feature interactions a
  linear model on one-hot features cannot express); component 0 is shared by all steps,
  component ``i`` belongs to step ``i`` alone; each is standardised;
- step i's conditional logit is ``b_i + signal * (sqrt(shared) u_0 + sqrt(1 - shared) u_i)``,
  ``P(T_1 | x) = sigmoid(l_1)``, ``P(T_i | T_{i-1} = 1, x) = sigmoid(l_i)``; labels are drawn
  step after step, so the funnel always holds, and the oracle is the entire-space
  ``P(T_i = 1 | x) = prod_{j <= i} sigmoid(l_j)``;
- the intercepts ``b_i`` are set by bisection on a calibration sample so that the mean oracle
  of step i equals ``base_rates[i]``.

Rows are generated in blocks seeded by ``(seed, block)``: the first k rows of ``make_funnel(n)``
do not depend on ``n``. About 1.5 s per 10^6 rows of 16 fields on one core (see
benchmarks/test_bench_data.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from apem.data.schema import FunnelData, FunnelSplits, Schema

BLOCK_ROWS = 1 << 16
CALIBRATION_ROWS = 1 << 17
ALI_CCP_RATES = (0.04, 0.005)


def default_rates(num_steps: int) -> tuple[float, ...]:
    """Click 4 %, conversion 0.5 % of impressions, geometric in between."""
    first, last = ALI_CCP_RATES
    return tuple(first * (last / first) ** (i / (num_steps - 1)) for i in range(num_steps))


def step_names(num_steps: int) -> tuple[str, ...]:
    """("click", "step2", ..., "conversion")."""
    return ("click",) + tuple(f"step{i}" for i in range(2, num_steps)) + ("conversion",)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class _World:
    """The drawn parameters of one synthetic funnel (components c = 0 shared, 1..S per step)."""

    sizes: np.ndarray  # (F,) ids per field, OOV excluded
    zipf_exponent: float
    offsets: np.ndarray  # (F,) start of each field's rows in the flat tables
    segment_of: np.ndarray  # (V_0 + 1,) segment of each id of field 0
    masks: np.ndarray  # (C, G, F) relevant fields of each component and segment
    main: np.ndarray  # (C, total_ids) per-value main effects
    embed: np.ndarray  # (C, total_ids, r) per-value interaction embeddings
    mean: np.ndarray  # (C,) component means on the calibration sample
    std: np.ndarray  # (C,) component standard deviations
    intercepts: np.ndarray  # (S,)
    signal: float
    shared: float

    def draw_ids(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        """(rows, F) int32 ids ``1..V_f``: floors of draws from density ``x^-a`` on [1, V_f + 1)."""
        uniform = rng.random((rows, self.sizes.size))
        top = self.sizes + 1.0
        if np.isclose(self.zipf_exponent, 1.0):
            values = top**uniform
        else:
            power = 1.0 - self.zipf_exponent
            values = (1.0 + uniform * (top**power - 1.0)) ** (1.0 / power)
        return np.clip(values.astype(np.int32), 1, self.sizes).astype(np.int32)

    def components(self, ids: np.ndarray) -> np.ndarray:
        """(rows, C) raw component values of the samples ``ids`` (rows, F)."""
        flat = ids + self.offsets
        segment = self.segment_of[ids[:, 0]]
        out = np.empty((ids.shape[0], self.masks.shape[0]))
        m = self.masks.sum(axis=2).max()
        for g in range(self.masks.shape[1]):
            rows = np.flatnonzero(segment == g)
            for c, mask in enumerate(self.masks[:, g]):
                values = flat[rows][:, mask]  # (rows_g, m) flat ids of the relevant fields
                main = self.main[c][values].sum(axis=1)
                vectors = self.embed[c][values]  # (rows_g, m, r)
                pairs = 0.5 * (
                    (vectors.sum(axis=1) ** 2).sum(axis=1) - (vectors**2).sum(axis=(1, 2))
                )
                out[rows, c] = main / np.sqrt(m) + pairs / np.sqrt(m * (m - 1) / 2)
        return out

    def logits(self, components: np.ndarray) -> np.ndarray:
        """(rows, S) conditional step logits from (rows, C) raw components."""
        z = (components - self.mean) / self.std
        mixed = np.sqrt(self.shared) * z[:, :1] + np.sqrt(1 - self.shared) * z[:, 1:]
        return self.intercepts + self.signal * mixed


def _draw_world(
    rng: np.random.Generator,
    num_fields: int,
    num_steps: int,
    vocab_sizes: Sequence[int],
    zipf_exponent: float,
    num_segments: int,
    relevant_fields: int,
    embed_dim: int,
    signal: float,
    shared: float,
) -> _World:
    sizes = np.asarray(vocab_sizes) + 1  # id 0 included
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    components = num_steps + 1
    masks = np.zeros((components, num_segments, num_fields), bool)
    for c in range(components):
        for g in range(num_segments):
            chosen = 1 + rng.choice(num_fields - 1, size=relevant_fields, replace=False)
            masks[c, g, chosen] = True
    return _World(
        sizes=np.asarray(vocab_sizes),
        zipf_exponent=zipf_exponent,
        offsets=offsets.astype(np.int64),
        segment_of=rng.integers(0, num_segments, size=sizes[0]),
        masks=masks,
        main=rng.standard_normal((components, sizes.sum())).astype(np.float32),
        embed=(
            rng.standard_normal((components, sizes.sum(), embed_dim)) / np.sqrt(embed_dim)
        ).astype(np.float32),
        mean=np.zeros(components),
        std=np.ones(components),
        intercepts=np.zeros(num_steps),
        signal=signal,
        shared=shared,
    )


def _calibrate(world: _World, rng: np.random.Generator, rates: Sequence[float]) -> None:
    """Set the component scales and the intercepts so that the mean oracle matches ``rates``."""
    raw = world.components(world.draw_ids(rng, CALIBRATION_ROWS))
    world.mean, world.std = raw.mean(axis=0), raw.std(axis=0)
    centred = world.logits(raw)
    reached = np.ones(raw.shape[0])
    for i, rate in enumerate(rates):
        low, high = -40.0, 40.0
        for _ in range(60):
            mid = 0.5 * (low + high)
            if (reached * _sigmoid(centred[:, i] + mid)).mean() < rate:
                low = mid
            else:
                high = mid
        world.intercepts[i] = 0.5 * (low + high)
        reached = reached * _sigmoid(centred[:, i] + world.intercepts[i])


def make_funnel(
    n: int,
    num_fields: int = 16,
    num_steps: int = 2,
    seed: int = 0,
    *,
    vocab_size: int | Sequence[int] = 1000,
    base_rates: Sequence[float] | None = None,
    zipf_exponent: float = 1.1,
    num_segments: int = 4,
    relevant_fields: int | None = None,
    embed_dim: int = 4,
    signal: float = 1.0,
    shared: float = 0.5,
) -> FunnelData:
    """Draw ``n`` impressions of a synthetic funnel (see the module docstring).

    Args:
        n: rows.
        num_fields: categorical fields (>= 3).
        num_steps: funnel steps (>= 2).
        seed: everything (parameters and rows) is a function of the seed.
        vocab_size: ids per field (OOV excluded): one size for the largest field, the others
            spread log-uniformly down to 10, or one size per field.
        base_rates: target entire-space rate of each step (decreasing); default
            ``default_rates`` (click 4 %, conversion 0.5 %, geometric in between).
        zipf_exponent: popularity skew of the ids.
        num_segments: latent segments (decided by field 0) with different relevant fields.
        relevant_fields: fields each segment's components read, among fields 1..F-1
            (default ``min(4, num_fields - 1)``).
        embed_dim: dimension of the interaction embeddings.
        signal: scale of the standardised logit (higher: higher oracle AUC).
        shared: fraction of logit variance shared by all steps.

    Returns:
        ``FunnelData`` with ids (n, F) int32, labels (n, S) uint8 and oracle (n, S) float32.
    """
    if num_steps < 2:
        raise ValueError(f"a funnel needs num_steps >= 2, got {num_steps}")
    if relevant_fields is None:
        relevant_fields = min(4, num_fields - 1)
    if not 2 <= relevant_fields < num_fields:
        raise ValueError(
            f"need 2 <= relevant_fields < num_fields, got {relevant_fields}, {num_fields}"
        )
    rates = default_rates(num_steps) if base_rates is None else tuple(base_rates)
    if (
        len(rates) != num_steps
        or not all(0 < r < 1 for r in rates)
        or list(rates) != sorted(rates, reverse=True)
    ):
        raise ValueError(f"base_rates must be {num_steps} decreasing rates in (0, 1), got {rates}")
    if isinstance(vocab_size, int):
        spread = np.random.default_rng([seed, 3]).permutation(num_fields)
        low = min(10, vocab_size)
        sizes = np.round(low * (vocab_size / low) ** (spread / max(num_fields - 1, 1))).astype(int)
    else:
        sizes = np.asarray(vocab_size, dtype=int)
        if sizes.shape != (num_fields,):
            raise ValueError(f"vocab_size needs {num_fields} sizes, got {len(sizes)}")
    world = _draw_world(
        np.random.default_rng([seed, 0]), num_fields, num_steps, sizes, zipf_exponent,
        num_segments, relevant_fields, embed_dim, signal, shared,
    )  # fmt: skip
    _calibrate(world, np.random.default_rng([seed, 1]), rates)
    ids = np.empty((n, num_fields), np.int32)
    labels = np.empty((n, num_steps), np.uint8)
    oracle = np.empty((n, num_steps), np.float32)
    for block, start in enumerate(range(0, n, BLOCK_ROWS)):
        rows = min(BLOCK_ROWS, n - start)
        rng = np.random.default_rng([seed, 2, block])
        block_ids = world.draw_ids(rng, rows)
        conditional = _sigmoid(world.logits(world.components(block_ids)))
        passed = np.cumprod(rng.random((rows, num_steps)) < conditional, axis=1)
        ids[start : start + rows] = block_ids
        labels[start : start + rows] = passed
        oracle[start : start + rows] = np.cumprod(conditional, axis=1)
    fields = tuple(f"f{i}" for i in range(num_fields))
    schema = Schema(fields, tuple(int(s) + 1 for s in sizes), step_names(num_steps))
    return FunnelData(schema, ids, labels, oracle=oracle)


def synthetic_splits(
    n: int, num_fields: int = 16, num_steps: int = 2, seed: int = 0, **kwargs
) -> FunnelSplits:
    """``make_funnel`` rows cut 80/10/10 into train / validation / test (views, no copies)."""
    data = make_funnel(n, num_fields, num_steps, seed, **kwargs)
    cuts = (int(0.8 * n), int(0.9 * n))
    parts = [
        FunnelData(data.schema, data.ids[a:b], data.labels[a:b], oracle=data.oracle[a:b])
        for a, b in ((0, cuts[0]), cuts, (cuts[1], n))
    ]
    options = {"n": n, "num_fields": num_fields, "num_steps": num_steps, **kwargs}
    return FunnelSplits(*parts, metadata={"source": "synthetic", "seed": seed, "options": options})
