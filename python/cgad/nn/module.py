"""nn.Module and the containers (ModuleList, ModuleDict, Sequential), following torch's surface."""
from collections import OrderedDict

import numpy as np

from cgad import _C
from cgad._grad_mode import no_grad
from cgad.nn.parameter import Parameter


class StateDictKeyError(RuntimeError, KeyError):
    """Missing or unexpected keys in load_state_dict(strict=True): a RuntimeError, as torch
    raises, and a KeyError, as a failed lookup by name."""

    __str__ = RuntimeError.__str__  # the message as written, not KeyError's repr of it


class Module:
    """Base class: registers Parameters and sub-Modules assigned as attributes."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        # As torch: a registered parameter or sub-module is replaced only by its own kind or None;
        # anything else would silently drop it from parameters() and state_dict().
        if name in self._parameters and value is not None and not isinstance(value, (Parameter, Module)):
            raise TypeError(f"cannot assign {type(value).__name__} as parameter '{name}' "
                            f"(cgad.nn.Parameter or None expected)")
        if name in self._modules and value is not None and not isinstance(value, (Parameter, Module)):
            raise TypeError(f"cannot assign {type(value).__name__} as child module '{name}' "
                            f"(cgad.nn.Module or None expected)")
        if value is None and (name in self._parameters or name in self._modules):
            (self._parameters if name in self._parameters else self._modules)[name] = None
            return
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self.__dict__.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        if name in d.get("_parameters", {}):
            return d["_parameters"][name]
        if name in d.get("_modules", {}):
            return d["_modules"][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Registers param (a Parameter or None) under name."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name} must be a Parameter or None, got {type(param).__name__}")
        self._parameters[name] = param

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_modules(self, prefix=""):
        """(name, module) for this module and every descendant, each once."""
        seen = set()

        def walk(mod, pre):
            if id(mod) in seen:
                return
            seen.add(id(mod))
            yield pre, mod
            for n, child in mod._modules.items():
                if child is not None:
                    yield from walk(child, f"{pre}.{n}" if pre else n)

        yield from walk(self, prefix)

    def modules(self):
        """Every module in the tree, this one first."""
        for _, m in self.named_modules():
            yield m

    def children(self):
        """The direct sub-modules."""
        return (m for m in self._modules.values() if m is not None)

    def _named_tensors(self, remove_duplicate):
        seen = set()
        for mname, mod in self.named_modules():
            for pname, p in mod._parameters.items():
                if p is None:
                    continue
                if remove_duplicate and id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def named_parameters(self):
        """(name, parameter) pairs; a tied parameter appears once, under its first name."""
        return self._named_tensors(remove_duplicate=True)

    def parameters(self):
        """Every parameter once."""
        return (p for _, p in self.named_parameters())

    def state_dict(self):
        """name -> tensor for every parameter name, tied aliases included (as torch)."""
        return OrderedDict((n, p.detach()) for n, p in self._named_tensors(remove_duplicate=False))

    def load_state_dict(self, state_dict, strict=True):
        """Copies values (tensors or numpy arrays) into the parameters in place, so ties and
        optimizer references hold. strict: missing or unexpected keys raise StateDictKeyError
        (a RuntimeError, as torch, and a KeyError)."""
        own = dict(self._named_tensors(remove_duplicate=False))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise StateDictKeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        # Every entry is checked before the first copy, so a bad one leaves the module unchanged.
        values = []
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if not isinstance(value, _C.Tensor):
                value = np.asarray(value)
                if value.dtype.kind not in "fiub":
                    raise TypeError(f"load_state_dict: {name} is not numeric ({value.dtype})")
            if tuple(value.shape) != tuple(p.shape):
                raise ValueError(f"load_state_dict: {name} has shape {tuple(value.shape)} in the state_dict, "
                                 f"but the parameter has shape {tuple(p.shape)}")
            values.append((p, value))
        with no_grad():
            for p, value in values:
                if not isinstance(value, _C.Tensor):
                    value = _C.from_numpy(value.astype(p.numpy().dtype, copy=False))
                p.copy_(value)
        return missing, unexpected

    def train(self, mode=True):
        """Sets training mode (dropout active) here and below."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Sets evaluation mode (dropout off)."""
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Clears every parameter's grad."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.zero_()

    def apply(self, fn):
        """Calls fn on every sub-module, then on this one (as torch)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, device):
        """Moves every parameter (and its grad) to device in place and returns self: the same
        tensor objects, so tied weights and optimizer references hold."""
        dev = _C.device_of(device)
        for p in self.parameters():
            _C.move_to_device_(p, dev)
        return self

    def num_parameters(self):
        """Total number of parameter elements (tied ones once)."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + ("\n)" if len(lines) > 1 else ")")


class ModuleList(Module):
    """A list of modules, registered by index."""

    def __init__(self, modules=None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, module):
        self._modules[str(len(self._modules))] = module
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules, registered by key."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None and not hasattr(modules, "items"):
            raise TypeError(f"ModuleDict: expected a mapping of names to modules, got {type(modules).__name__}")
        for k, m in (modules or {}).items():
            self[k] = m

    def __setitem__(self, key, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: {key} must be a Module, got {type(module).__name__}")
        self._modules[key] = module

    def __getitem__(self, key):
        return self._modules[key]

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()


class Sequential(Module):
    """Modules applied in order."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x
