"""rkt.records: typing.NamedTuple's behaviour for the start path's records, without typing."""

from __future__ import annotations

import copy
import pickle

import pytest

from rkt.records import NamedTuple
from tests.conftest import bare_python


class Mount(NamedTuple):
    """A volume mounted into an app."""

    volume: str
    path: str
    read_only: bool = False
    options: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.volume} at {self.path}" + (" (ro)" if self.read_only else "")

    @property
    def writable(self) -> bool:
        return not self.read_only

    @classmethod
    def root(cls) -> Mount:
        return cls("root", "/")

    def __str__(self) -> str:
        return f"<{super().__str__()}>"


def test_record_fields_defaults_and_tuple_identity() -> None:
    m = Mount("data", "/var/data")
    assert (m.volume, m.path, m.read_only, m.options) == ("data", "/var/data", False, ())
    assert m == ("data", "/var/data", False, ()) and hash(m) == hash(tuple(m))
    assert Mount("a", "/a", read_only=True) == Mount(path="/a", volume="a", read_only=True)
    assert Mount._fields == ("volume", "path", "read_only", "options")
    assert Mount._field_defaults == {"read_only": False, "options": ()}
    assert Mount.__match_args__ == Mount._fields
    assert (
        Mount.__mro__ == (Mount, tuple, object) and Mount.__doc__ == "A volume mounted into an app."
    )


def test_record_methods_properties_and_helpers() -> None:
    m = Mount("data", "/d", True)
    assert m.describe() == "data at /d (ro)" and not m.writable and Mount.root().path == "/"
    assert repr(m) == "Mount(volume='data', path='/d', read_only=True, options=())"
    assert str(m) == f"<{m!r}>"  # zero-argument super() works in a record's methods
    assert m._replace(read_only=False) == Mount("data", "/d") and m.read_only
    assert m._asdict() == {"volume": "data", "path": "/d", "read_only": True, "options": ()}
    assert Mount._make(["v", "/p", False, ("x",)]).options == ("x",)
    match m:
        case Mount(volume, path):
            assert (volume, path) == ("data", "/d")


def test_record_copies_and_pickles_as_itself() -> None:
    m = Mount("data", "/d", options=("rbind",))
    assert copy.copy(m) == m and copy.deepcopy(m) == m and type(copy.deepcopy(m)) is Mount
    again = pickle.loads(pickle.dumps(m))
    assert again == m and type(again) is Mount


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Mount("data"), "missing required argument: 'path'"),
        (lambda: Mount("a", "/a", False, (), 5), "takes 4 positional arguments but 5"),
        (lambda: Mount("a", "/a", volume="b"), "multiple values for argument 'volume'"),
        (lambda: Mount("a", "/a", mode="0755"), "unexpected keyword argument 'mode'"),
        (lambda: Mount._make(["a"]), "expected 4 arguments, got 1"),
    ],
)
def test_record_refuses_wrong_arguments_like_a_call(call: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        call()  # type: ignore[operator]


def test_record_replace_refuses_unknown_fields_and_records_are_immutable() -> None:
    m = Mount("a", "/a")
    with pytest.raises(ValueError, match="unexpected field names"):
        m._replace(mode="0755")
    with pytest.raises(AttributeError):
        m.volume = "b"  # type: ignore[misc]


def test_record_class_definitions_refuse_what_namedtuple_refuses() -> None:
    with pytest.raises(TypeError, match="non-default field 'b' follows"):

        class Bad(NamedTuple):
            a: int = 0
            b: int

    with pytest.raises(AttributeError, match="cannot overwrite record attribute _replace"):

        class Worse(NamedTuple):
            a: int

            def _replace(self) -> None: ...  # type: ignore[override]


def test_records_do_not_import_typing() -> None:
    code = "import sys, rkt.records, rkt.settings; print('typing' in sys.modules)"
    assert bare_python(code).strip() == "False"
