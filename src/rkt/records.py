"""Immutable records for the start path: ``typing.NamedTuple`` for the type checker, without
``typing`` at run time.

    from rkt.records import NamedTuple

    class Mount(NamedTuple):
        volume: str
        path: str
        read_only: bool = False

        def describe(self) -> str: ...

The type checker sees ``typing.NamedTuple`` itself. At run time a class written so becomes a tuple
subclass with what ``typing.NamedTuple`` gives it (field accessors, defaults, ``_fields``,
``_field_defaults``, ``_make``, ``_replace``, ``_asdict``, ``__match_args__``, a field-naming
``repr``, copy and pickle support, the class body's methods and properties), built without
importing ``typing`` (~2.5 ms with the ``re`` and ``contextlib`` it pulls in) and without
compiling anything: ``typing.NamedTuple`` goes through ``collections.namedtuple``, which
``exec``s a generated ``__new__`` for every class (~70 µs a class here, and ``rkt run`` defines
~60). Field annotations are never evaluated, so modules may use
``from __future__ import annotations`` freely. docs/architecture.md, "Records".

What differs, deliberately: the constructor is one generic ``__new__`` (arguments are checked as
Python checks a call, with ``TypeError`` messages in the same spirit); a record class's ``__doc__``
is its own docstring or none. As with ``typing.NamedTuple``, a record class's only base is
``tuple`` and subclassing one gives an ordinary subclass.

Imports only ``_collections`` (C) for the field accessors.
"""

from __future__ import annotations

from _collections import _tuplegetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from typing import NamedTuple as NamedTuple
else:

    class _Missing:
        __slots__ = ()

        def __repr__(self) -> str:
            return "<missing>"

    _MISSING = _Missing()

    # Names the class body may not define (typing.NamedTuple refuses them as well).
    _RESERVED = frozenset(
        ("__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
         "_make", "_replace", "_asdict", "_source")
    )  # fmt: skip

    def _constructor(name: str, fields: tuple[str, ...], defaults: tuple[Any, ...]) -> Any:
        count = len(fields)
        required = count - len(defaults)
        positions = {field: index for index, field in enumerate(fields)}

        def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
            if not kwargs and len(args) == count:
                return tuple.__new__(cls, args)
            if len(args) > count:
                raise TypeError(
                    f"{name}() takes {count} positional arguments but {len(args)} were given"
                )
            values = [*args, *(_MISSING,) * (count - len(args))]
            for key, value in kwargs.items():
                index = positions.get(key)
                if index is None:
                    raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
                if values[index] is not _MISSING:
                    raise TypeError(f"{name}() got multiple values for argument {key!r}")
                values[index] = value
            for index in range(count):
                if values[index] is _MISSING:
                    if index < required:
                        raise TypeError(f"{name}() missing required argument: {fields[index]!r}")
                    values[index] = defaults[index - required]
            return tuple.__new__(cls, values)

        __new__.__qualname__ = f"{name}.__new__"
        return __new__

    def _make(cls: Any, iterable: Any) -> Any:
        values = tuple(iterable)
        if len(values) != len(cls._fields):
            raise TypeError(f"expected {len(cls._fields)} arguments, got {len(values)}")
        return tuple.__new__(cls, values)

    def _replace(self: Any, **changes: Any) -> Any:
        values = [
            changes.pop(field, value) for field, value in zip(self._fields, self, strict=True)
        ]
        if changes:
            raise ValueError(f"got unexpected field names: {list(changes)!r}")
        return tuple.__new__(type(self), values)

    def _asdict(self: Any) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))

    def __repr__(self: Any) -> str:
        inner = ", ".join(
            f"{field}={value!r}" for field, value in zip(self._fields, self, strict=True)
        )
        return f"{type(self).__name__}({inner})"

    def __getnewargs__(self: Any) -> tuple[Any, ...]:
        return tuple(self)

    class _RecordMeta(type):
        def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
            if namespace.get("_record_root"):
                return super().__new__(mcls, name, bases, namespace)
            if bases != (NamedTuple,):
                raise TypeError("a record class can only inherit from NamedTuple")
            annotations = namespace.get("__annotations__", {})
            fields = tuple(annotations)
            defaults = []
            for field in fields:
                if field.startswith("_"):
                    raise ValueError(f"{name}: field names cannot start with '_': {field!r}")
                if field in namespace:
                    defaults.append(namespace[field])
                elif defaults:
                    raise TypeError(
                        f"{name}: non-default field {field!r} follows a field with a default"
                    )
            body = {}
            for key, value in namespace.items():
                if key in _RESERVED:
                    raise AttributeError(f"{name}: cannot overwrite record attribute {key}")
                if key not in annotations:
                    body[key] = value
            body.update(
                __slots__=(),
                __new__=_constructor(name, fields, tuple(defaults)),
                __annotations__=dict(annotations),
                __match_args__=fields,
                _fields=fields,
                _field_defaults=dict(
                    zip(fields[len(fields) - len(defaults) :], defaults, strict=True)
                ),
                _make=classmethod(_make),
                _replace=_replace,
                _asdict=_asdict,
                __getnewargs__=__getnewargs__,
            )
            body.setdefault("__repr__", __repr__)
            for index, field in enumerate(fields):
                body[field] = _tuplegetter(index, f"Alias for field number {index}")
            return type.__new__(type, name, (tuple,), body)

    class NamedTuple(tuple, metaclass=_RecordMeta):  # type: ignore[no-redef]
        """The base of every record class (see the module docstring)."""

        __slots__ = ()
        _record_root = True
