"""Adam and AdamW with torch.optim's surface: param groups, writable group["lr"], set_alpha /
get_alpha and a state_dict of numpy arrays. The state and the update live in C++ (cgad._C.Adam);
this class keeps the groups as dicts and hands their settings over at each step()."""
import numbers

import numpy as np

from cgad import _C

_HYPER = ("lr", "betas", "eps", "weight_decay")


class Adam:
    """torch.optim.Adam: weight_decay (default 0) is coupled L2 added to the gradient."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        self._check(self.defaults, "defaults")
        self._impl = _C.Adam(self.decoupled)
        self.param_groups = []
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    def _check(self, g, where):
        name = type(self).__name__
        for key in ("lr", "eps", "weight_decay"):
            v = g[key]
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name}: {key} must be a number, got {v!r} ({where})")
        b = g["betas"]
        if not isinstance(b, (tuple, list)) or len(b) != 2:
            raise ValueError(f"{name}: betas must be a pair of numbers, got {b!r} ({where})")

    def add_param_group(self, group):
        """Adds a group: a dict with "params" and optional lr, betas, eps, weight_decay."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{type(self).__name__}: a param group must be a dict with 'params'")
        g = dict(group)
        params = g["params"]
        g["params"] = [params] if isinstance(params, _C.Tensor) else list(params)
        for p in g["params"]:
            if not isinstance(p, _C.Tensor):
                raise TypeError(f"{type(self).__name__}: params must be tensors, got {type(p).__name__}")
        seen = {id(p) for grp in self.param_groups for p in grp["params"]}
        if any(id(p) in seen for p in g["params"]):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one group")
        for key in _HYPER:
            g.setdefault(key, self.defaults[key])
        g["betas"] = tuple(g["betas"])
        self._check(g, f"group {len(self.param_groups)}")
        self._impl.add_group(g["params"], float(g["lr"]), float(g["betas"][0]), float(g["betas"][1]),
                             float(g["eps"]), float(g["weight_decay"]))
        self.param_groups.append(g)

    def _sync(self):
        for i, g in enumerate(self.param_groups):
            self._check(g, f"group {i}")
            self._impl.set_hyper(i, float(g["lr"]), float(g["betas"][0]), float(g["betas"][1]), float(g["eps"]),
                                 float(g["weight_decay"]))

    def step(self):
        """One update of every parameter that has a grad (the others are skipped)."""
        self._sync()
        self._impl.step()

    def zero_grad(self, set_to_none=True):
        """Clears the grads of every parameter."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.zero_()

    def set_alpha(self, lr):
        """Sets the learning rate of every group."""
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise TypeError(f"set_alpha: lr must be a number, got {lr!r}")
        self._impl.set_alpha(float(lr))
        for g in self.param_groups:
            g["lr"] = float(lr)

    def get_alpha(self):
        """The learning rate of group 0."""
        return float(self.param_groups[0]["lr"])

    def state_dict(self):
        """torch's layout: {"state": {i: {step, exp_avg, exp_avg_sq}}, "param_groups": [...]}, numpy arrays."""
        state = {}
        for i in range(self._impl.num_params):
            s = self._impl.get_state(i)
            if s is not None:
                state[i] = {"step": int(s[0]), "exp_avg": s[1], "exp_avg_sq": s[2]}
        groups, start = [], 0
        for g in self.param_groups:
            n = len(g["params"])
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = list(range(start, start + n))
            groups.append(d)
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restores the state and group settings saved by state_dict()."""
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        if groups is None or "state" not in state_dict:
            raise ValueError("load_state_dict: expected a dict with 'state' and 'param_groups'")
        if not isinstance(groups, (list, tuple)) or not all(
                isinstance(g, dict) and isinstance(g.get("params"), (list, tuple)) for g in groups):
            raise ValueError("load_state_dict: each saved param group must be a dict with a 'params' list")
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("load_state_dict: the saved param groups do not match this optimizer's "
                             f"({[len(g['params']) for g in groups]} vs {[len(g['params']) for g in self.param_groups]})")
        # Everything is checked before anything changes, so a bad state_dict leaves the optimizer as it was.
        params = [p for g in self.param_groups for p in g["params"]]
        states = []
        if not isinstance(state_dict["state"], dict):
            raise ValueError(f"load_state_dict: 'state' must be a dict, got {type(state_dict['state']).__name__}")
        for key, s in state_dict["state"].items():
            try:
                i = int(key)
                m, v = (np.asarray(s["exp_avg"]), np.asarray(s["exp_avg_sq"]))
                step = int(s["step"])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"load_state_dict: state {key!r} is malformed ({e})") from None
            if not 0 <= i < len(params):
                raise ValueError(f"load_state_dict: state {key!r} is out of range for {len(params)} parameters")
            if m.dtype.kind != "f" or v.dtype.kind != "f" or m.shape != v.shape or m.shape != tuple(params[i].shape):
                raise ValueError(f"load_state_dict: state {key!r} has moments {m.dtype}{m.shape} and {v.dtype}{v.shape}, "
                                 f"expected floats of the parameter's shape {tuple(params[i].shape)}")
            if step < 0:
                raise ValueError(f"load_state_dict: state {key!r} has a negative step {step}")
            states.append((i, step, m, v))
        before = [dict(g) for g in self.param_groups]
        try:
            for saved, own in zip(groups, self.param_groups):
                for k, v in saved.items():
                    if k != "params":
                        own[k] = tuple(v) if k == "betas" else v
            self._sync()
        except BaseException:
            for own, old in zip(self.param_groups, before):
                own.clear()
                own.update(old)
            self._sync()
            raise
        for i, step, m, v in states:
            self._impl.set_state(i, step, _C.from_numpy(m), _C.from_numpy(v))


class AdamW(Adam):
    """torch.optim.AdamW: weight decay decoupled from the gradient (p *= 1 - lr * wd)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
