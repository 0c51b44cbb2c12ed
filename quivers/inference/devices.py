"""Where inference runs, and the data moved there.

Data follow the parameters: :class:`~quivers.inference.SVI` runs where its
guide's parameters are, MCMC where its adaptor puts the chains (by default
where the model's parameters or buffers are), and ``fit(..., device=...)``
moves the model and the data to the device first (the guide is made
there). Observations given on another device (the CPU, typically) are
moved once per data set, not once per gradient.

Laws
----
- ``to_device(obs, None) is obs``: no device, no copy.
- Values that are not tensors (lists, numbers) are left to the program's
  data checks, which make tensors of them on the device of the run.
- ``as_device(name)`` is a device torch can allocate on, or a
  :class:`~quivers.errors.DeviceError` naming ``name``.

Examples
--------
>>> import torch
>>> obs = to_device({"y": torch.ones(3), "n": 3}, "cpu")
>>> obs["y"].device.type, obs["n"]
('cpu', 3)
>>> device_of(torch.nn.Linear(2, 1)).type
'cpu'
>>> device_of(torch.nn.Module()) is None
True
>>> as_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from quivers.errors import DeviceError

__all__ = ["as_device", "device_of", "to_device", "DataOnDevice"]


def as_device(device: torch.device | str | None, where: str = "device") -> torch.device | None:
    """``device`` as a ``torch.device`` that torch can allocate on here;
    ``None`` stays ``None``.

    Raises
    ------
    DeviceError
        Not a device name, or a device this machine lacks (``"cuda"`` when
        ``torch.cuda.is_available()`` is False); ``where`` names the
        argument in the message.

    Examples
    --------
    >>> as_device("nodevice")
    Traceback (most recent call last):
    ...
    quivers.errors.DeviceError: device `nodevice` is no torch device; a device is `cpu`, `cuda`, `cuda:1`, `mps`, ...
    """
    if device is None:
        return None
    try:
        out = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"{where} `{device}` is no torch device",
                          hint="a device is `cpu`, `cuda`, `cuda:1`, `mps`, ...") from None
    if out.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{where} `{device}` asked for, but torch has no CUDA here "
                          "(torch.cuda.is_available() is False)", hint="run on `cpu`, or install a CUDA build of torch")
    if out.type == "cuda" and out.index is not None and out.index >= torch.cuda.device_count():
        raise DeviceError(f"{where} `{device}` asked for, but torch sees {torch.cuda.device_count()} CUDA devices")
    try:
        torch.empty(0, device=out)
    except (RuntimeError, AssertionError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DeviceError(f"{where} `{device}`: torch cannot allocate there ({reason})") from None
    return out


def device_of(module: torch.nn.Module) -> torch.device | None:
    """The device of ``module``'s first parameter or buffer; ``None`` when
    it holds no tensor (its computations then run where their inputs are)."""
    for t in module._parameters.values():  # parameters() yields its own first; without walking the tree
        if t is not None:
            return t.device
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return None


def to_device(observations: Any, device: torch.device | str | None) -> Any:
    """``observations`` with every tensor value on ``device``."""
    if device is None or not isinstance(observations, Mapping):
        return observations
    device = torch.device(device)
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in observations.items()}


class DataOnDevice:
    """Moves a data set to a device, remembering the last one moved so that
    a loop that passes the same tensors every step copies them once (a
    tensor written in place since is moved afresh).

    Examples
    --------
    >>> import torch
    >>> move = DataOnDevice()
    >>> obs = {"y": torch.ones(3)}
    >>> move(obs, "cpu") is move(obs, "cpu")
    True
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._held: Any = None  # the data set moved last, kept alive so that its ids stay its own
        self._moved: Any = None

    def __call__(self, observations: Any, device: torch.device | str | None) -> Any:
        if device is None or not isinstance(observations, Mapping):
            return observations
        device = torch.device(device)
        key = (id(observations), device) + tuple(
            (k, id(v), v._version) if isinstance(v, torch.Tensor) else (k, id(v))
            for k, v in observations.items()
        )
        if key != self._key:
            self._key, self._held, self._moved = key, observations, to_device(observations, device)
        return self._moved
