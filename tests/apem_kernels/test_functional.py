"""The public functional API: validation before launch, backend dispatch, triton == torch."""

import sys
import types

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from apem_kernels import Backend, eager, functional, reference
from apem_kernels.functional import (
    inducing_attention,
    inducing_attention_block,
    inducing_attention_factored,
    smooth_step,
)

B, N, K, D, HEADS = 2, 3, 4, 8, 2
FUSED_MODULE = "apem_kernels.ops.inducing_attention"


def valid_args(dtype=torch.float32, generator=None):
    """Keyword arguments of a valid ``inducing_attention_block`` call with every option set."""

    def rand(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

    mask = torch.rand(B, N, generator=generator) < 0.3
    return {
        "x": rand(B, N, D),
        "inducing": rand(K, D),
        "w_k": rand(D, D) / D**0.5,
        "w_v": rand(D, D) / D**0.5,
        "w_o": rand(D, D) / D**0.5,
        "num_heads": HEADS,
        "norm_weight": 1 + rand(D) / 4,
        "norm_bias": rand(D) / 4,
        "u": rand(B, K),
        "gamma": 2.0,
        "key_padding_mask": mask,
        "w_q": rand(D, D) / D**0.5,
    }


def never_called(*args, **kwargs):
    raise AssertionError("a kernel ran although the input is invalid")


@pytest.fixture
def no_launch(monkeypatch):
    """Both backends fail loudly if reached, so an error must come from validation."""
    for name in (
        "smooth_step",
        "inducing_attention",
        "inducing_attention_block",
        "factored_inducing_attention",
    ):
        monkeypatch.setattr(reference, name, never_called)
    fake = types.ModuleType(FUSED_MODULE)
    fake.fused_inducing_attention = never_called
    fake.fused_factored_attention = never_called
    monkeypatch.setitem(sys.modules, FUSED_MODULE, fake)


def with_(**changes):
    return lambda args: {**args, **changes}


def without(*names):
    return lambda args: {k: v for k, v in args.items() if k not in names}


def rand(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


BAD_ATTENTION_ARGS = [
    (with_(x=rand(B, N, D).numpy()), TypeError, "x must be a torch.Tensor"),
    (with_(x=torch.ones(B, N, D, dtype=torch.int64)), TypeError, "x must be float16"),
    (with_(x=rand(N, D)), ValueError, r"x must have shape \(B, N, d\), got \(3, 8\)"),
    (with_(num_heads=3), ValueError, "num_heads must be >= 1 and divide d = 8"),
    (with_(num_heads=0), ValueError, "num_heads must be >= 1"),
    (with_(num_heads=2.0), TypeError, "num_heads must be an int"),
    (with_(inducing=rand(K, D + 1)), ValueError, r"x \(B, N, d\) and inducing \(K, d\) must"),
    (with_(x=rand(B, N, D // 2)), ValueError, r"must share d: x has shape \(2, 3, 4\), inducing"),
    (with_(inducing=rand(1, K, D)), ValueError, r"inducing must have shape \(K, d\)"),
    (with_(w_k=rand(D, D + 1)), ValueError, r"w_k must have shape \(d, d\) = \(8, 8\)"),
    (with_(w_v=rand(D)), ValueError, r"w_v must have shape \(d, d\)"),
    (with_(w_o=rand(D + 1, D)), ValueError, r"w_o must have shape \(d, d\)"),
    (with_(w_q=rand(D, 2 * D)), ValueError, r"w_q must have shape \(d, d\)"),
    (with_(norm_weight=rand(D + 1)), ValueError, r"norm_weight must have shape \(d,\) = \(8,\)"),
    (with_(norm_bias=rand(1, D)), ValueError, r"norm_bias must have shape \(d,\)"),
    (with_(norm_eps=-1e-5), ValueError, "norm_eps must be a finite number >= 0"),
    (with_(norm_eps=float("nan")), ValueError, "norm_eps must be a finite number >= 0"),
    (with_(norm_eps="1e-5"), TypeError, "norm_eps must be a real number"),
    (with_(u=rand(B, K + 1)), ValueError, r"u must have shape \(B, K\) = \(2, 4\)"),
    (with_(z=rand(B, K)), ValueError, "either z .* or u .*, not both"),
    (lambda a: {**without("u", "gamma")(a), "z": rand(B, K, 1)}, ValueError, r"z must have shape"),
    (without("gamma"), ValueError, "u needs gamma"),
    (lambda a: {**without("u")(a), "z": rand(B, K)}, ValueError, "gamma is only used with u"),
    (with_(gamma=0.0), ValueError, "gamma must be a finite number > 0, got 0.0"),
    (with_(gamma=-2.0), ValueError, "gamma must be a finite number > 0"),
    (with_(gamma=float("nan")), ValueError, "gamma must be a finite number > 0, got nan"),
    (with_(gamma=float("inf")), ValueError, "gamma must be a finite number > 0"),
    (with_(gamma=torch.tensor(float("nan"))), ValueError, "gamma must be a finite number > 0"),
    (with_(gamma=torch.ones(2)), TypeError, "gamma must be a real number or a one-element"),
    (with_(gamma="2"), TypeError, "gamma must be a real number"),
    (with_(gamma=True), TypeError, "gamma must be a real number"),
    (with_(key_padding_mask=torch.zeros(B, N)), TypeError, "key_padding_mask must be a bool"),
    (with_(key_padding_mask=torch.zeros(B, N + 1, dtype=torch.bool)), ValueError, r"\(B, N\)"),
    (with_(w_k=rand(D, D, dtype=torch.float64)), TypeError, "w_k has dtype torch.float64 but x"),
    (with_(u=rand(B, K, dtype=torch.float16)), TypeError, "u has dtype torch.float16 but x"),
    (with_(norm_bias=rand(D, dtype=torch.bfloat16)), TypeError, "norm_bias has dtype"),
    (with_(inducing=torch.empty(K, D, device="meta")), ValueError, "inducing is on meta but x"),
    (
        with_(key_padding_mask=torch.empty(B, N, dtype=torch.bool, device="meta")),
        ValueError,
        "key_padding_mask is on meta but x is on cpu",
    ),
    (with_(backend="cuda"), ValueError, "backend must be one of"),
]


@pytest.mark.usefixtures("no_launch")
@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize(("change", "error", "message"), BAD_ATTENTION_ARGS)
def test_bad_attention_input_raises_before_launch(change, error, message, backend):
    args = change({**valid_args(), "backend": backend})
    with pytest.raises(error, match=message):
        inducing_attention_block(**args)


@pytest.mark.usefixtures("no_launch")
def test_bad_input_of_inducing_attention_without_norm():
    args = without("norm_weight", "norm_bias")(valid_args())
    with pytest.raises(ValueError, match=r"w_o must have shape \(d, d\)"):
        inducing_attention(**{**args, "w_o": rand(D, 1)})


@pytest.mark.usefixtures("no_launch")
@pytest.mark.parametrize(
    ("u", "gamma", "error", "message"),
    [
        ([0.5], 1.0, TypeError, "u must be a torch.Tensor, got list"),
        (torch.ones(3, dtype=torch.int32), 1.0, TypeError, "u must be float16, .*torch.int32"),
        (torch.ones(3), 0, ValueError, "gamma must be a finite number > 0, got 0.0"),
        (torch.ones(3), float("nan"), ValueError, "gamma must be a finite number > 0, got nan"),
        (torch.ones(3), -float("inf"), ValueError, "gamma must be a finite number > 0"),
        (torch.ones(3), None, TypeError, "gamma must be a real number, got NoneType"),
    ],
)
def test_bad_smooth_step_input(u, gamma, error, message):
    with pytest.raises(error, match=message):
        smooth_step(u, gamma, backend="torch")


@pytest.mark.usefixtures("no_launch")
def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    # The check reads interpreting(); switching TRITON_INTERPRET itself mid-session would leave
    # triton's interpreter state behind for later tests.
    monkeypatch.setattr(functional, "interpreting", lambda: False)
    with pytest.raises(ValueError, match="backend='triton' needs CUDA tensors"):
        smooth_step(torch.ones(3), 1.0, backend="triton")
    with pytest.raises(ValueError, match="backend='triton' needs CUDA tensors"):
        inducing_attention_block(**valid_args(), backend="triton")


def test_wider_than_the_kernels_runs_the_reference_or_refuses_triton(monkeypatch):
    monkeypatch.setattr(functional, "interpreting", lambda: True)
    monkeypatch.setitem(sys.modules, FUSED_MODULE, fake_fused(calls := []))
    wide = 264
    args = dict(
        x=torch.randn(2, 3, wide),
        inducing=torch.randn(4, wide),
        w_k=torch.randn(wide, wide),
        w_v=torch.randn(wide, wide),
        w_o=torch.randn(wide, wide),
        num_heads=2,
    )
    with pytest.raises(ValueError, match="supports d <= 128 .*, got d = 264 with 2 heads"):
        inducing_attention(**args, backend="triton")
    # As on CUDA, auto resolves to triton; past the kernels' width it runs the torch backend.
    monkeypatch.setattr(functional, "resolve_backend", lambda backend, *tensors: Backend.TRITON)
    expected = eager.inducing_attention(*args.values())
    torch.testing.assert_close(inducing_attention(**args, backend="auto"), expected)
    assert calls == []


def fake_fused(calls):
    """A stand-in for ``fused_inducing_attention`` that records its arguments."""
    fake = types.ModuleType(FUSED_MODULE)

    def fused(*args, **kwargs):
        calls.append((args, kwargs))
        return torch.zeros(B, K, D)

    fake.fused_inducing_attention = fused
    return fake


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_cpu_runs_the_torch_backend(backend, monkeypatch):
    monkeypatch.setitem(sys.modules, FUSED_MODULE, fake_fused(calls := []))
    args = valid_args()
    got = inducing_attention_block(**args, backend=backend)
    z = reference.smooth_step(args.pop("u"), args.pop("gamma"))
    want = eager.inducing_attention_block(**args, z=z)
    assert calls == [] and torch.equal(got, want)


def test_triton_dispatch_passes_the_contract(monkeypatch):
    # No kernel runs (the fused module is a fake), so CPU tensors do on every machine.
    monkeypatch.setattr(functional, "interpreting", lambda: True)
    monkeypatch.setitem(sys.modules, FUSED_MODULE, fake_fused(calls := []))
    args = {**valid_args(), "gamma": torch.tensor(2.5), "norm_eps": 1e-3}
    inducing_attention_block(**args, backend="triton")
    inducing_attention(**without("norm_weight", "norm_bias", "norm_eps")(args), backend="triton")
    (block_args, block_kwargs), (plain_args, plain_kwargs) = calls
    padded = args["key_padding_mask"][..., None]
    assert torch.equal(block_args[0], args["x"].masked_fill(padded, 0))  # padded keys zeroed
    for name, value in zip(("inducing", "w_k", "w_v", "w_o"), block_args[1:], strict=False):
        assert value is args[name]
    assert block_args[5] == HEADS
    # A tensor γ stays a tensor: the op reads it, so a compiled graph does not break there.
    gamma = block_kwargs["gamma"]
    assert isinstance(gamma, torch.Tensor) and gamma.shape == () and gamma.item() == 2.5
    assert block_kwargs["norm_weight"] is args["norm_weight"] and block_kwargs["norm_eps"] == 1e-3
    assert block_kwargs["u"] is args["u"] and block_kwargs["z"] is None
    assert plain_kwargs["norm_weight"] is None and plain_kwargs["norm_bias"] is None


@pytest.mark.parametrize("backend", ["auto", "torch", "triton"])
def test_smooth_step_backends(backend, kernel_device):
    u = torch.randn(5, 7, device=kernel_device) * 2
    got = smooth_step(u, torch.tensor(3.0), backend=backend)
    torch.testing.assert_close(got, reference.smooth_step(u, 3.0), rtol=1e-5, atol=1e-6)


# float32 on the GPU multiplies through tf32x3, as accurate as float32 at these tolerances.
TOLERANCE = {
    torch.float32: {"rtol": 1e-4, "atol": 1e-4},
    torch.float16: {"rtol": 1e-2, "atol": 1e-2},
    torch.bfloat16: {"rtol": 5e-2, "atol": 5e-2},
}


def check_backends_agree(data, block: bool, device: torch.device) -> None:
    """Triton in a low precision against the torch backend in float64 on the same inputs."""
    dtype = data.draw(st.sampled_from(list(TOLERANCE)), "dtype")
    batch = data.draw(st.integers(0, 3), "B")
    keys = data.draw(st.integers(1, 9), "N")
    queries = data.draw(st.integers(1, 6), "K")
    heads = data.draw(st.integers(1, 2), "heads")
    dim = heads * data.draw(st.sampled_from([4, 9]), "d_h")
    gate = data.draw(st.sampled_from(["none", "z", "u"]), "gate")
    masked = data.draw(st.booleans(), "key_padding_mask")
    query_projection = data.draw(st.booleans(), "w_q")
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), "seed"))

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(device, dtype)

    args = {
        "x": rand(batch, keys, dim),
        "inducing": rand(queries, dim),
        "w_k": rand(dim, dim, scale=dim**-0.5),
        "w_v": rand(dim, dim, scale=dim**-0.5),
        "w_o": rand(dim, dim, scale=dim**-0.5),
        "num_heads": heads,
    }
    if block:
        args |= {"norm_weight": 1 + rand(dim, scale=0.25), "norm_bias": rand(dim, scale=0.25)}
    if gate == "z":
        args["z"] = torch.rand(batch, queries, generator=gen).to(device, dtype)
    if gate == "u":
        args |= {"u": rand(batch, queries, scale=2.0), "gamma": 3.0}
    if masked:
        args["key_padding_mask"] = (torch.rand(batch, keys, generator=gen) < 0.4).to(device)
    if query_projection:
        args["w_q"] = rand(dim, dim, scale=dim**-0.5)
    truth = {
        k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in args.items()
    }
    function = inducing_attention_block if block else inducing_attention
    got = function(**args, backend="triton")
    want = function(**truth, backend="torch")
    assert got.dtype == dtype and got.shape == (batch, queries, dim)
    torch.testing.assert_close(got.double(), want, **TOLERANCE[dtype])


# Quick default run: no shrinking (each example runs the interpreter); the sweep below shrinks.
@settings(max_examples=4, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(data=st.data(), block=st.booleans())
def test_triton_and_torch_backends_agree(data, block, kernel_device):
    check_backends_agree(data, block, kernel_device)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(data=st.data(), block=st.booleans())
def test_triton_and_torch_backends_agree_sweep(data, block, kernel_device):
    check_backends_agree(data, block, kernel_device)


@pytest.mark.parametrize("gamma", [10.0, 9.9998, 7.531, 1e-3])
def test_gamma_as_a_tensor_equals_gamma_as_a_float(gamma):
    u = torch.linspace(-6.0, 6.0, 101)
    expected = smooth_step(u, gamma, backend="torch")
    tensor = torch.tensor(gamma, dtype=torch.float64)
    assert torch.equal(smooth_step(u, tensor, backend="torch"), expected)


def factored_args(dim_in: int, dim_out: int, dtype=torch.float32) -> dict:
    gen = torch.Generator().manual_seed(5)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype)

    mask = torch.rand(B, N, generator=gen) < 0.3
    mask[0] = True
    return {
        "x": rand(B, N, dim_in),
        "a": rand(HEADS, K, dim_in) / dim_in**0.5,
        "c": rand(HEADS, dim_in, dim_out) / dim_in**0.5,
        "u": rand(B, K),
        "gamma": 2.0,
        "key_padding_mask": mask,
    }


@pytest.mark.usefixtures("no_launch")
@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            with_(a=rand(HEADS, K, D + 1)),
            ValueError,
            r"x \(B, N, d_in\) and a \(M, K, d_in\) must share d_in",
        ),
        (
            with_(c=rand(HEADS + 1, D, 4)),
            ValueError,
            r"c must have shape \(M, d_in, d_out\) with \(M, d_in\) = \(2, 8\)",
        ),
        (with_(u=rand(B, K + 1)), ValueError, r"u must have shape \(B, K\) = \(2, 4\)"),
        (with_(c=rand(HEADS, D, 4).double()), TypeError, "c has dtype torch.float64 but x"),
        (with_(x=rand(N, D)), ValueError, r"x must have shape \(B, N, d_in\)"),
    ],
)
def test_bad_factored_input_raises_before_launch(change, error, message, backend):
    with pytest.raises(error, match=message):
        inducing_attention_factored(**change(factored_args(D, 4)), backend=backend)


@pytest.mark.parametrize(("dim_in", "dim_out"), [(5, 12), (12, 5), (8, 8)])
def test_factored_triton_widens_to_one_width_and_matches_torch(dim_in, dim_out, kernel_device):
    """The kernels take one width: zero columns widen x and A (or C), and O is cut back."""
    args = {
        k: v.to(kernel_device)
        for k, v in factored_args(dim_in, dim_out, torch.float64).items()
        if k != "gamma"
    }
    args["gamma"] = 2.0
    leaves = {k: v.requires_grad_() for k, v in args.items() if k in ("x", "a", "c", "u")}
    outs = {b: inducing_attention_factored(**args, backend=b) for b in ("torch", "triton")}
    assert outs["triton"].shape == (B, K, dim_out)
    torch.testing.assert_close(outs["triton"], outs["torch"], rtol=1e-10, atol=1e-12)
    grads = {
        b: torch.autograd.grad(o.square().sum(), list(leaves.values())) for b, o in outs.items()
    }
    for name, got, want in zip(leaves, grads["triton"], grads["torch"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_a_non_finite_padded_key_changes_nothing(poison, backend, kernel_device):
    """Padded keys get no weight: what they hold, NaN or inf included, reaches no output."""
    args = {k: v.to(kernel_device) if torch.is_tensor(v) else v for k, v in valid_args().items()}
    mask = torch.zeros(B, N, dtype=torch.bool, device=kernel_device)
    mask[0, 1] = True
    args["key_padding_mask"] = mask
    clean = inducing_attention_block(**args, backend=backend)
    poisoned = args["x"].clone()
    poisoned[0, 1] = poison
    x = poisoned.requires_grad_()
    out = inducing_attention_block(**{**args, "x": x}, backend=backend)
    torch.testing.assert_close(out, clean)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[0, 1] == 0).all()
    factored = factored_args(D, 4)
    factored = {k: v.to(kernel_device) if torch.is_tensor(v) else v for k, v in factored.items()}
    factored["key_padding_mask"] = mask
    clean = inducing_attention_factored(**factored, backend=backend)
    factored["x"] = factored["x"].clone()
    factored["x"][0, 1] = poison
    torch.testing.assert_close(inducing_attention_factored(**factored, backend=backend), clean)
