"""The workloads: float32 parameter trees as flat dicts of leaf name -> shape."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

Shapes = dict[str, tuple[int, ...]]


def single_leaf() -> Shapes:
    return {"w": (4096, 4096)}


def mlp(layers: int = 30, width: int = 960) -> Shapes:
    shapes: Shapes = {}
    for i in range(layers):
        shapes[f"dense_{i:02d}/kernel"] = (width, width)
        shapes[f"dense_{i:02d}/bias"] = (width,)
    return shapes


def resnet50() -> Shapes:
    """The parameter shapes of ResNet-50 (torchvision layout, HWIO kernels): 161 leaves."""
    shapes: Shapes = {"conv1/kernel": (7, 7, 3, 64), "bn1/scale": (64,), "bn1/bias": (64,)}
    cin = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
        for block in range(blocks):
            name = f"layer{stage + 1}/block{block}"
            convs = [(1, 1, cin, width), (3, 3, width, width), (1, 1, width, 4 * width)]
            for j, shape in enumerate(convs):
                shapes[f"{name}/conv{j + 1}/kernel"] = shape
                shapes[f"{name}/bn{j + 1}/scale"] = (shape[-1],)
                shapes[f"{name}/bn{j + 1}/bias"] = (shape[-1],)
            if block == 0:
                shapes[f"{name}/downsample/kernel"] = (1, 1, cin, 4 * width)
                shapes[f"{name}/downsample/bn/scale"] = (4 * width,)
                shapes[f"{name}/downsample/bn/bias"] = (4 * width,)
            cin = 4 * width
    shapes["fc/kernel"] = (2048, 1000)
    shapes["fc/bias"] = (1000,)
    return shapes


def small_leaves(n: int = 1000, size: int = 1024) -> Shapes:
    return {f"leaf_{i:04d}": (size,) for i in range(n)}


WORKLOADS: dict[str, Callable[[], Shapes]] = {
    "single-16M": single_leaf,  # one 4096 x 4096 leaf
    "mlp-28M": mlp,  # 30 dense layers of width 960: 60 leaves, 27.7M
    "resnet50-25M": resnet50,  # 161 leaves, 25.6M
    "1000x1k": small_leaves,  # 1000 leaves of 1024
}


def make_tree(shapes: Shapes, seed: int, scale: float) -> dict[str, jax.Array]:
    """Arrays of ``shapes``: normal numbers times ``scale``, float32."""
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {
        name: scale * jax.random.normal(key, shape, jnp.float32)
        for key, (name, shape) in zip(keys, shapes.items(), strict=True)
    }


def n_params(shapes: Shapes) -> int:
    return sum(math.prod(s) for s in shapes.values())


def abstract(shapes: Shapes) -> dict[str, jax.ShapeDtypeStruct]:
    """float32 shapes only: compiling from these allocates nothing."""
    return {name: jax.ShapeDtypeStruct(shape, jnp.float32) for name, shape in shapes.items()}
