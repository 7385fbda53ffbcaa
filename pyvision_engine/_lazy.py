"""Names of a package that load from their module on first use (PEP 562), so that
`import pyvision_engine` does not pay for layers a CNN program never touches."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(namespace: Dict[str, Any], table: Dict[str, str]
                 ) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """(__getattr__, __dir__) for the module whose globals are ``namespace``: a name in
    ``table`` is imported from the module ``table[name]`` names, then kept in the
    namespace, so later lookups are plain attribute reads."""
    owner = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module '{owner}' has no attribute '{name}'")

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
