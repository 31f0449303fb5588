"""Name -> factory registries used by both ``paddle_models`` and ``torch_ref``.

Both trees keep their own registry objects, but the class lives here so that the two sides
validate names and keyword arguments the same way and give the same error messages.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List


class Registry:
    """A mapping from a public name to a factory (class or function)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._factories:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> List[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._factories:
            raise KeyError(
                f"unknown {self.kind} '{name}'; known {self.kind}s: {', '.join(self.names())}"
            )
        return self._factories[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        factory = self.get(name)
        params = inspect.signature(factory).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in params]
        if unknown and not accepts_any:
            allowed = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
            raise TypeError(
                f"{self.kind} '{name}' got unknown argument(s) {unknown}; it accepts {allowed}"
            )
        return factory(**kwargs)
