"""The stub (hooklens/_hooklens.pyi) and the runtime agree on the public API."""

import ast
from pathlib import Path

import hooklens
import hooklens._hooklens as native

STUB = Path(hooklens.__file__).with_name("_hooklens.pyi")


def stub_classes():
    tree = ast.parse(STUB.read_text())
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if any(getattr(b, "id", None) == "TypedDict" for b in node.bases):
            continue  # keyword types of the stub only
        members = [n.name for n in node.body if isinstance(n, ast.FunctionDef)]
        members += [n.target.id for n in node.body if isinstance(n, ast.AnnAssign)]
        yield node.name, members


def test_every_stubbed_class_and_member_exists():
    classes = dict(stub_classes())
    assert {"HookedTransformer", "ActivationCache", "Config", "HookPoint"} <= set(classes)
    for name, members in classes.items():
        cls = getattr(native, name)
        for m in members:
            assert hasattr(cls, m), f"{name}.{m} is in the stub but not in the module"


def test_every_public_runtime_method_is_stubbed():
    classes = dict(stub_classes())
    for name in ("HookedTransformer", "ActivationCache", "Config", "HookPoint"):
        runtime = {m for m in dir(getattr(native, name)) if not m.startswith("_")}
        missing = runtime - set(classes[name])
        assert not missing, f"{name}: {missing} missing from the stub"


def test_the_package_exports_the_native_names():
    for name in hooklens.__all__:
        assert hasattr(hooklens, name)
    assert hooklens.HookLensError.__module__ == "hooklens"
