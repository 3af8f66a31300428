"""The exception tree drawn in billy_core/errors.py is the one the classes form."""

from __future__ import annotations

import re

from billy_core import errors


def _drawn(doc: str) -> dict[str, str]:
    """child -> parent, from the box drawing in the module docstring."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*)(?:[├└]── )?([A-Z][A-Za-z]+)\b", line)
        if not match or not (line.strip().startswith(("├", "└")) or not stack):
            continue
        depth = len(match.group(1)) + (0 if not line.strip().startswith(("├", "└")) else 4)
        name = match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_every_drawn_class_exists_with_the_drawn_parent():
    drawn = _drawn(errors.__doc__ or "")
    assert drawn, "no tree found in billy_core.errors' docstring"
    for child, parent in drawn.items():
        cls = getattr(errors, child)
        assert cls.__bases__[0] is getattr(errors, parent), (child, parent)


def test_every_class_of_the_module_is_drawn():
    drawn = _drawn(errors.__doc__ or "")
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    }
    assert defined == set(drawn) | {"BillyError"}
