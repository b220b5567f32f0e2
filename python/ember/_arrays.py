"""Arrays in and out: NumPy, PyTorch, and anything with __cuda_array_interface__ or __dlpack__.

Every input is turned into an `Arr` (pointer, shape, dtype, device, contiguity) without copying.
A framework (`Numpy`, `Torch`, `Cupy`) allocates the outputs where the inputs live and gives
the stream to work on. Torch and CuPy are imported only when an array of theirs is seen, or
when a CUDA array of another kind (JAX, Numba, ...) needs one of them to allocate outputs.
"""
import sys

import numpy as np

# dtype names as NumPy and torch print them (torch.float32 -> "float32")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
# Tests set this to fill every output with NaN when it is allocated, so that a value ember
# did not write cannot pass (the C tests poison their buffers the same way).
POISON = False


class Arr:
    """A caller's array, viewed in place."""
    __slots__ = ("obj", "ptr", "shape", "dtype", "device", "contiguous", "fw")

    def __init__(self, obj, ptr, shape, dtype, device, contiguous, fw):
        self.obj, self.ptr, self.shape, self.dtype = obj, ptr, tuple(shape), dtype
        self.device, self.contiguous, self.fw = device, contiguous, fw

    @property
    def size(self):
        n = 1
        for d in self.shape:
            n *= d
        return n


def device_str(dev):
    return dev[0] if dev[1] is None else "%s:%d" % dev


def _torch():
    import torch  # noqa: PLC0415 - optional
    return torch


def _is_torch(x):
    t = sys.modules.get("torch")
    return t is not None and isinstance(x, t.Tensor)


def _is_cupy(x):
    c = sys.modules.get("cupy")
    return c is not None and isinstance(x, c.ndarray)


def _c_contiguous(shape, strides, itemsize):
    """strides in elements; size-1 dimensions may have any stride (as NumPy and torch say)."""
    want = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != want:
            return False
        want *= n
    return True


class _Framework:
    """Defaults: host arrays have no stream; outputs are returned as allocated."""

    @staticmethod
    def stream(device):
        return None

    @staticmethod
    def wrap_out(x, like):
        return x


class Numpy(_Framework):
    name = "numpy"

    @staticmethod
    def view(x):
        return Arr(x, x.ctypes.data, x.shape, x.dtype.name, ("cpu", None),
                   bool(x.flags.c_contiguous), Numpy)

    @staticmethod
    def empty(shape, dtype, device):
        x = np.empty(shape, dtype=np.dtype(dtype))
        if POISON:
            x.fill(np.nan)
        return x

    @staticmethod
    def narrow_int32(a, clamp):
        x = a.obj
        if clamp:
            x = np.clip(x, -1, np.iinfo(np.int32).max)
        return Numpy.view(np.ascontiguousarray(x, dtype=np.int32))


class Torch(_Framework):
    name = "torch"

    @staticmethod
    def view(x):
        dev = x.device
        device = ("cpu", None) if dev.type == "cpu" else (dev.type, dev.index)
        return Arr(x, x.data_ptr(), tuple(x.shape), str(x.dtype).replace("torch.", ""), device,
                   x.is_contiguous(), Torch)

    @staticmethod
    def _device(device):
        return "cpu" if device[0] == "cpu" else "cuda:%d" % device[1]

    @staticmethod
    def empty(shape, dtype, device):
        t = _torch()
        x = t.empty(shape, dtype=getattr(t, dtype), device=Torch._device(device))
        if POISON:
            x.fill_(float("nan"))
        return x

    @staticmethod
    def narrow_int32(a, clamp):
        # on the array's device, on the current stream: no host round trip. Clamping first
        # keeps an int64 value outside int32 out of range after the cast (it cannot wrap to a
        # valid id); bool masks become 0/1.
        t = _torch()
        x = a.obj
        if clamp:
            x = x.clamp(-1, 2**31 - 1)
        return Torch.view(x.to(t.int32).contiguous())

    @staticmethod
    def stream(device):
        if device[0] == "cpu":
            return None
        return _torch().cuda.current_stream(device[1]).cuda_stream or None


class Cupy(_Framework):
    name = "cupy"

    @staticmethod
    def view(x):
        isz = x.dtype.itemsize
        return Arr(x, x.data.ptr, x.shape, x.dtype.name, ("cuda", x.device.id),
                   _c_contiguous(x.shape, [s // isz for s in x.strides], isz), Cupy)

    @staticmethod
    def empty(shape, dtype, device):
        import cupy  # noqa: PLC0415
        with cupy.cuda.Device(device[1]):
            x = cupy.empty(shape, dtype=dtype)
            if POISON:
                x.fill(float("nan"))
            return x

    @staticmethod
    def narrow_int32(a, clamp):
        import cupy  # noqa: PLC0415
        x = a.obj
        with cupy.cuda.Device(a.device[1]):
            if clamp:
                x = cupy.clip(x, -1, 2**31 - 1)
            return Cupy.view(cupy.ascontiguousarray(x, dtype=cupy.int32))

    @staticmethod
    def stream(device):
        import cupy  # noqa: PLC0415
        with cupy.cuda.Device(device[1]):
            return cupy.cuda.get_current_stream().ptr or None


class Foreign:
    """A CUDA array of another framework (JAX, Numba, ...), seen through torch or CuPy without
    a copy; outputs go back through the framework's own from_dlpack where it has one."""

    def __init__(self, inner, module):
        self.inner, self.module = inner, module
        self.name = module

    def empty(self, shape, dtype, device):
        return self.inner.empty(shape, dtype, device)

    def narrow_int32(self, a, clamp):
        return self.inner.narrow_int32(a, clamp)

    def stream(self, device):
        return self.inner.stream(device)

    def wrap_out(self, x, like):
        if self.module == "jax":
            import jax.dlpack  # noqa: PLC0415
            return jax.dlpack.from_dlpack(x)
        return x


def _foreign_device_view(name, x):
    """A CUDA array that is neither torch nor CuPy: view it with torch (or CuPy) in place."""
    module = type(x).__module__.split(".")[0]
    try:
        t = _torch()
    except ImportError:
        t = None
    if t is not None:
        if hasattr(x, "__cuda_array_interface__"):
            v = t.as_tensor(x, device="cuda")  # zero-copy; honours the interface's stream
        else:
            v = t.from_dlpack(x)  # passes torch's current stream to the producer
        inner = Torch
    else:
        try:
            import cupy  # noqa: PLC0415
        except ImportError:
            raise TypeError(
                "%s: a CUDA array from %s is used through torch or cupy, and neither is "
                "installed" % (name, module)) from None
        v = cupy.asarray(x) if hasattr(x, "__cuda_array_interface__") else cupy.from_dlpack(x)
        inner = Cupy
    a = inner.view(v)
    a.fw = Foreign(inner, module)
    return a


def _dlpack_device(x):
    try:
        kind, index = x.__dlpack_device__()
    except Exception:  # noqa: BLE001 - not a usable DLPack producer
        return None
    return int(kind), int(index)


def view(name, x):
    """The Arr of a caller's input, or None. Never copies. Raises TypeError naming `name` for
    objects that are not arrays."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return Numpy.view(x)
    if _is_torch(x):
        return Torch.view(x)
    if _is_cupy(x):
        return Cupy.view(x)
    if hasattr(x, "__cuda_array_interface__"):
        return _foreign_device_view(name, x)
    if hasattr(x, "__dlpack__"):
        dev = _dlpack_device(x)
        if dev is not None and dev[0] == 1:  # kDLCPU
            return Numpy.view(np.from_dlpack(x))
        if dev is not None and dev[0] in (2, 13):  # kDLCUDA, kDLCUDAManaged
            return _foreign_device_view(name, x)
        raise TypeError("%s: DLPack device %r is not supported (CPU and CUDA are)" % (name, dev))
    if isinstance(x, (list, tuple)):
        return Numpy.view(np.asarray(x))
    raise TypeError("%s: expected a NumPy array, a torch tensor or an array with "
                    "__cuda_array_interface__ / __dlpack__, got %s" % (name, type(x).__name__))
