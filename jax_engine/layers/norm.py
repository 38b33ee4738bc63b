import jax.numpy as jnp


def rms_norm(x, weight, eps: float):
    x32 = x.astype(jnp.float32)
    x32 = x32 * jnp.reciprocal(jnp.sqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps))
    return (x32 * weight.astype(jnp.float32)).astype(x.dtype)
