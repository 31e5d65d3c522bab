"""The README's Python snippet runs on the default model and prints what its comments say."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_snippet_runs(smollm2):
    text = README.read_text()
    section = text[text.index("## Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = io.StringIO()
    scope = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), scope)
    lines = out.getvalue().splitlines()
    assert lines == [" Paris", "(1, 9, 10, 10) (1, 10, 9, 64)"]
    assert scope["grid"].shape == (30, 9)
    assert abs(scope["ablated"] - scope["logits"]).max() > 1e-3
