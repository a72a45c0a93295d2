"""No pickle anywhere in the project (checkpoints and weights go through safetensors):
no pickle-family import, no torch.save/torch.load, no np.load(..., allow_pickle=True)."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = ("python", "train", "bench")
PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "shelve", "joblib",
                    "marshal", "copyreg"}


def _python_files():
    for top in SCANNED:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
            for name in filenames:
                if name.endswith(".py"):
                    yield os.path.join(dirpath, name)


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def pickle_uses(source, filename="<source>"):
    """(line, what) for every pickling construct in `source`."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names
                      if a.name.split(".")[0] in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] in PICKLING_MODULES:
            found.append((node.lineno, f"from {node.module} import"))
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if name.split(".")[0] in PICKLING_MODULES or \
                    name.endswith(("torch.save", "torch.load")):
                found.append((node.lineno, name))
        elif isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and
                                                     kw.value.value is False):
                    found.append((node.lineno, f"{_dotted(node.func)}(allow_pickle=...)"))
    return found


def test_the_scanner_sees_every_form():
    src = ("import pickle\nfrom dill import dumps\nimport torch\ntorch.save(m, 'f')\n"
           "x = torch.load('f')\nimport numpy as np\nnp.load('a.npy', allow_pickle=True)\n"
           "np.load('b.npz', allow_pickle=False)\nmsg = 'no pickle here'\n")
    assert sorted({line for line, _ in pickle_uses(src)}) == [1, 2, 4, 5, 7]


def test_no_pickle_in_project_sources():
    files = list(_python_files())
    assert len(files) > 20  # the scan found the project
    offenders = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            uses = pickle_uses(f.read(), path)
        if uses:
            offenders[os.path.relpath(path, ROOT)] = uses
    assert not offenders, f"pickle in the project: {offenders}"
