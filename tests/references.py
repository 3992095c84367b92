import numpy as np

"""Independent references the tests compare against."""


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
