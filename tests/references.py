"""Independent references the tests compare against, and the settings and data several test files share."""

import numpy as np
from hypothesis import strategies as st

import kernel_recovery as kr

#: Adam as the tests run it beside the exact methods: float64, started at zero, every step taken (no early stop).
ADAM = dict(max_iter=400, dtype="float64", init="zeros", tol=0.0)
#: Every built-in method with the options the tests give it ("fft" without the Wiener term: exact on clean data).
METHODS = {"lstsq": {}, "fft": {"wiener": False}, "adam": ADAM}


def jax_conv1d(x, kernel, bias=None, *, stride=1, padding=(0, 0), dilation=1, groups=1):
    """Reference: jax.lax.conv_general_dilated in float64 on (batch, length, channels) data."""
    import jax

    with jax.enable_x64(True):
        import jax.numpy as jnp

        out = jax.lax.conv_general_dilated(
            jnp.asarray(x, dtype=jnp.float64),
            jnp.asarray(kernel, dtype=jnp.float64),
            window_strides=(stride,),
            padding=padding if isinstance(padding, str) else [tuple(padding)],
            rhs_dilation=(dilation,),
            dimension_numbers=("NWC", "WIO", "NWC"),
            feature_group_count=groups,
        )
        out = np.asarray(out)
    return out if bias is None else out + bias


def three_tap_record(n=200, seed=0):
    """``n`` samples of white noise and their valid convolution with the kernel ``[0.5, -1.0, 2.0]``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return x, kr.conv1d(x, [0.5, -1.0, 2.0])


@st.composite
def conv_configs(draw):
    """A random Conv1D configuration (groups, channels, taps, stride, dilation, padding, bias, layout, flip) with
    enough samples to determine it, and the seed of its data (:func:`config_data`)."""
    groups = draw(st.integers(1, 2))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 2))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["valid", "same", "causal", "full", (2, 1)]))
    use_bias = draw(st.booleans())
    unknowns = k * cin // groups + use_bias
    span = (k - 1) * dilation + 1
    length = span + stride * (4 * unknowns + draw(st.integers(8, 30)))
    return dict(
        groups=groups, cin=cin, cout=cout, k=k, stride=stride, dilation=dilation, padding=padding,
        use_bias=use_bias, batch=draw(st.integers(2, 3)), length=length, layout=draw(st.sampled_from(["nwc", "ncw"])),
        flip=draw(st.booleans()), seed=draw(st.integers(0, 2**31)),
    )  # fmt: skip


def config_data(c):
    """``x, y, w, b`` and the settings of a :func:`conv_configs` draw: noiseless data in its layout."""
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["batch"], c["length"], c["cin"]))
    w = rng.standard_normal((c["k"], c["cin"] // c["groups"], c["cout"]))
    b = rng.standard_normal(c["cout"]) if c["use_bias"] else None
    conf = {key: c[key] for key in ("stride", "padding", "dilation", "groups", "flip")}
    y = kr.conv1d(x, w, b, **conf)
    if c["layout"] == "ncw":
        x, y = x.transpose(0, 2, 1), y.transpose(0, 2, 1)
    return x, y, w, b, dict(conf, use_bias=c["use_bias"], layout=c["layout"])
