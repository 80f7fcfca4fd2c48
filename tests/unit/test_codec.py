"""The JSON codec: what crosses it, how it is tagged, and what it refuses."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from runtime.engine import (
    JsonCodec,
    canonical_json,
    compact_json,
    compact_json_bytes,
    digest,
    type_tag,
)
from runtime.engine._codec import canonical_chunks
from runtime.errors import CodecError


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass(frozen=True)
class Tagged:
    name: str
    points: list[Point]
    ids: tuple[int, ...] = ()


class Doc(BaseModel):
    title: str
    pages: int
    origin: Point | None = None


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class NotRegistered:
    pass


@dataclasses.dataclass
class Unlisted:
    v: int


def _codec() -> JsonCodec:
    return JsonCodec([Point, Tagged, Doc, Colour, Level])


def _json_text_roundtrip(codec: JsonCodec, value: Any) -> Any:
    """Encode, go through real JSON text, decode: what a peer process would see."""
    return codec.decode(json.loads(canonical_json(codec.encode(value))))


# -- primitives and containers ---------------------------------------------------------


@pytest.mark.parametrize("value", [None, True, False, 0, -7, 2**70, 1.5, -0.25, "", "héllo"])
def test_primitives_encode_to_themselves(value: Any) -> None:
    codec = _codec()
    encoded = codec.encode(value)
    assert encoded == value
    assert type(encoded) is type(value)
    assert _json_text_roundtrip(codec, value) == value


def test_bool_stays_bool_and_int_stays_int() -> None:
    codec = _codec()
    assert codec.roundtrip(True) is True
    assert type(codec.roundtrip(1)) is int
    assert type(codec.roundtrip(1.0)) is float


def test_nested_containers_roundtrip() -> None:
    codec = _codec()
    value = {"a": [1, {"b": [None, "x", 2.5]}], "c": {}, "d": []}
    assert codec.encode(value) == value
    assert _json_text_roundtrip(codec, value) == value


def test_tuples_arrive_as_lists() -> None:
    codec = _codec()
    assert codec.encode((1, (2, 3))) == [1, [2, 3]]
    assert codec.roundtrip((1, (2, 3))) == [1, [2, 3]]


def test_registered_types_inside_containers_are_tagged() -> None:
    codec = _codec()
    encoded = codec.encode({"p": [Point(1, 2)]})
    assert encoded == {"p": [{"$type": type_tag(Point), "$value": {"x": 1, "y": 2}}]}
    assert codec.decode(encoded) == {"p": [Point(1, 2)]}


# -- dataclasses, pydantic models, enums --------------------------------------------------


def test_dataclass_is_tagged_with_module_and_qualname() -> None:
    codec = _codec()
    encoded = codec.encode(Point(3, 4))
    assert encoded == {"$type": f"{__name__}.Point", "$value": {"x": 3, "y": 4}}
    assert codec.decode(encoded) == Point(3, 4)


def test_nested_dataclass_with_tuple_field_roundtrips_through_json_text() -> None:
    codec = _codec()
    value = Tagged("t", [Point(1, 2), Point(3, 4)], (5, 6))
    back = _json_text_roundtrip(codec, value)
    assert back == value
    assert isinstance(back.points[0], Point)
    assert back.ids == (5, 6)


def test_pydantic_model_roundtrips_with_nested_dataclass() -> None:
    codec = _codec()
    value = Doc(title="a", pages=3, origin=Point(0, 1))
    encoded = codec.encode(value)
    assert encoded["$type"] == type_tag(Doc)
    assert encoded["$value"] == {"title": "a", "pages": 3, "origin": {"x": 0, "y": 1}}
    back = _json_text_roundtrip(codec, value)
    assert back == value
    assert isinstance(back, Doc)


@pytest.mark.parametrize("member", [Colour.RED, Colour.BLUE, Level.LOW, Level.HIGH])
def test_enums_roundtrip_by_value_and_keep_their_class(member: enum.Enum) -> None:
    codec = _codec()
    encoded = codec.encode(member)
    assert encoded == {"$type": type_tag(type(member)), "$value": member.value}
    back = _json_text_roundtrip(codec, member)
    assert back is member


def test_int_enum_is_not_mistaken_for_an_int() -> None:
    codec = JsonCodec()
    with pytest.raises(CodecError, match="Level"):
        codec.encode(Level.LOW)


def test_register_is_idempotent_and_lists_names_sorted() -> None:
    codec = JsonCodec([Point])
    codec.register(Point)
    codec.register(Colour)
    assert codec.registered == tuple(sorted([type_tag(Point), type_tag(Colour)]))


@pytest.mark.parametrize("cls", [int, str, NotRegistered, dict])
def test_register_refuses_classes_that_cannot_cross(cls: type) -> None:
    with pytest.raises(CodecError, match="only dataclasses, pydantic models and enums"):
        JsonCodec().register(cls)


# -- dict keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"$type": "not.a.Type", "$value": 1},
        {"$dict": {"a": 1}},
        {"$dict": None},
        {"$x": Point(1, 2), "plain": 1},
        {"$": {"$": {"$": []}}},
    ],
)
def test_dollar_prefixed_keys_are_wrapped_and_roundtrip(value: dict[str, Any]) -> None:
    codec = _codec()
    encoded = codec.encode(value)
    assert set(encoded) == {"$dict"}
    assert _json_text_roundtrip(codec, value) == value


def test_dollar_in_the_middle_of_a_key_needs_no_wrapping() -> None:
    codec = _codec()
    assert codec.encode({"a$b": 1}) == {"a$b": 1}


@pytest.mark.parametrize("key", [1, 1.5, None, (1, 2), True])
def test_non_string_dict_keys_are_refused_with_the_key_named(key: Any) -> None:
    with pytest.raises(CodecError, match="dict keys must be strings") as info:
        _codec().encode({"ok": 1, key: 2})
    assert repr(key) in str(info.value)


def test_non_string_key_deep_inside_is_refused() -> None:
    with pytest.raises(CodecError, match="dict keys must be strings"):
        _codec().encode([{"a": {3: "x"}}])


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, math.nan], {"k": math.inf}])
def test_nan_and_infinities_are_refused(value: Any) -> None:
    with pytest.raises(CodecError, match="not valid JSON"):
        _codec().encode(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, [1.0, -math.inf]])
def test_nan_and_infinities_are_refused_on_decode(value: Any) -> None:
    # json.loads accepts NaN/Infinity by default, so a peer could send them
    with pytest.raises(CodecError, match="not valid JSON"):
        _codec().decode(value)


def test_unregistered_class_error_names_the_type_and_how_to_register() -> None:
    with pytest.raises(CodecError) as info:
        _codec().encode(Unlisted(1))
    text = str(info.value)
    assert f"{__name__}.Unlisted" in text
    assert "register_types(Unlisted)" in text
    assert "handler's annotation" in text


@pytest.mark.parametrize("value", [{1, 2}, frozenset({1}), b"bytes", NotRegistered(), 1j])
def test_other_python_values_are_refused(value: Any) -> None:
    with pytest.raises(CodecError, match="is not a registered message type"):
        _codec().encode(value)


def test_registered_subclass_of_a_registered_class_is_not_implied() -> None:
    @dataclasses.dataclass
    class Point3(Point):
        z: int = 0

    with pytest.raises(CodecError, match="Point3"):
        _codec().encode(Point3(1, 2, 3))


def test_unknown_tag_on_decode_names_the_tag() -> None:
    with pytest.raises(CodecError, match=r"unknown message type 'evil\.Payload'") as info:
        _codec().decode({"$type": "evil.Payload", "$value": {}})
    assert "register_types" in str(info.value)


def test_decode_of_a_peer_with_fewer_types_refuses_ours() -> None:
    ours, theirs = _codec(), JsonCodec([Point])
    with pytest.raises(CodecError, match="unknown message type"):
        theirs.decode(ours.encode(Doc(title="x", pages=1)))


def test_decode_of_invalid_payload_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match=f"cannot decode {type_tag(Point)}"):
        _codec().decode({"$type": type_tag(Point), "$value": {"x": "not an int"}})


@pytest.mark.parametrize("data", [{"$dict": 5}, {"$dict": [1, 2]}, {"$dict": "x"}])
def test_decode_of_malformed_dict_wrapper_is_a_codec_error(data: Any) -> None:
    with pytest.raises(CodecError):
        _codec().decode(data)


@pytest.mark.parametrize("data", [(1, 2), {1, 2}, b"x", Point(1, 2)])
def test_decode_refuses_what_is_not_json_data(data: Any) -> None:
    with pytest.raises(CodecError, match="not JSON data"):
        _codec().decode(data)


def test_two_classes_with_one_tag_are_refused() -> None:
    def make() -> type:
        @dataclasses.dataclass
        class Same:
            v: int

        return Same

    first, second = make(), make()
    assert type_tag(first) == type_tag(second)
    codec = JsonCodec([first])
    with pytest.raises(CodecError, match="two different classes share the codec name"):
        codec.register(second)
    with pytest.raises(CodecError, match="two different classes"):
        JsonCodec([first, second])


# -- roundtrip identity (property) ------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_points = st.builds(Point, st.integers(), st.integers())
_values = st.recursive(
    _json_scalars | _points | st.sampled_from(list(Colour)) | st.sampled_from(list(Level)),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_values)
def test_roundtrip_identity(value: Any) -> None:
    codec = _codec()
    back = _json_text_roundtrip(codec, value)
    assert back == value
    # encoding is a function of the value: encoding the decoded value gives the same JSON
    assert canonical_json(codec.encode(back)) == canonical_json(codec.encode(value))


@given(st.dictionaries(st.text(max_size=4), st.integers(), max_size=6))
def test_canonical_json_ignores_insertion_order(d: dict[str, int]) -> None:
    reversed_d = dict(reversed(list(d.items())))
    assert canonical_json(d) == canonical_json(reversed_d)


def _json_docs(floats: bool) -> st.SearchStrategy[Any]:
    scalars: st.SearchStrategy[Any] = (
        st.none() | st.booleans() | st.integers() | st.text(max_size=6)
    )
    if floats:  # codec JSON forms hold finite floats only (the codec refuses NaN)
        scalars = scalars | st.floats(allow_nan=False, allow_infinity=False)
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=20,
    )


def _stdlib_compact(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


@given(_json_docs(floats=False))
def test_compact_json_is_the_text_of_compact_json_dumps(doc: Any) -> None:
    # checkpoint lines and run records: keys in insertion order, non-ASCII kept,
    # integers of any size (beyond 64 bits through the stdlib encoder)
    assert compact_json(doc) == _stdlib_compact(doc)
    assert compact_json_bytes(doc) == _stdlib_compact(doc).encode()
    assert compact_json_bytes(doc, newline=True) == (_stdlib_compact(doc) + "\n").encode()


@given(_json_docs(floats=True))
def test_compact_json_parses_back_to_the_same_values(doc: Any) -> None:
    # floats may be spelled differently from json.dumps (0.00006103515625 for
    # 6.103515625e-05), never with another value
    assert json.loads(compact_json(doc)) == doc
    assert json.loads(compact_json_bytes(doc)) == doc


def test_compact_json_keeps_key_order_and_refuses_what_is_not_json() -> None:
    assert compact_json({"b": 1, "a": ["é", 1e300]}) == '{"b":1,"a":["é",1e+300]}'
    assert compact_json_bytes({"b": "é"}, newline=True) == '{"b":"é"}\n'.encode()
    # what the fast writer refuses, the stdlib encoder writes as json.dumps does
    assert compact_json({"n": 2**70, 1: [True]}) == '{"n":1180591620717411303424,"1":[true]}'
    deep: Any = 0
    for _ in range(400):
        deep = [deep]
    assert json.loads(compact_json_bytes(deep)) == deep

    @dataclasses.dataclass
    class Point:
        x: int

    for not_json in (object(), Point(1), datetime.datetime(2026, 1, 1)):
        with pytest.raises(TypeError, match="not JSON serializable"):
            compact_json({"a": not_json})
        with pytest.raises(TypeError, match="not JSON serializable"):
            compact_json_bytes({"a": not_json})
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="Circular"):
        compact_json(cyclic)


# -- canonical JSON and digests -----------------------------------------------------------


def test_canonical_json_is_compact_sorted_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "é", None]}) == '{"a":[1.5,"é",null],"b":1}'


def test_canonical_json_of_encoded_data_is_stable_across_codecs() -> None:
    value = {"z": Tagged("n", [Point(1, 2)]), "a": Colour.RED}
    texts = {canonical_json(_codec().encode(value)) for _ in range(3)}
    assert texts == {
        '{"a":{"$type":"tests.unit.test_codec.Colour","$value":"red"},'
        '"z":{"$type":"tests.unit.test_codec.Tagged","$value":'
        '{"ids":[],"name":"n","points":[{"x":1,"y":2}]}}}'
    }


def test_digest_is_pinned() -> None:
    # Trace hashes are compared across processes and runtimes: the digest must never change.
    assert digest("a") == "27c35e6e9373877f29e562464e46497e"
    assert digest("a", "b") == "852635742d6eb30fdccb0e7c1b53d92f"
    assert digest("a", "b") != digest("ab")


@pytest.mark.parametrize("tag", [5, ["a"], {"x": 1}])
def test_decode_of_a_non_string_tag_is_a_codec_error(tag: Any) -> None:
    with pytest.raises(CodecError, match="unknown message type"):
        _codec().decode({"$type": tag, "$value": {}})


@given(_json_docs(floats=True))
def test_canonical_json_is_the_text_of_sorted_compact_json_dumps(doc: Any) -> None:
    # digests hash this text, so it must stay byte for byte what the stdlib's public
    # encoder writes; canonical_json and canonical_chunks build on its private C encoder
    text = json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    assert canonical_json(doc) == text
    assert "".join(canonical_chunks(doc, 0)) == text


def test_canonical_json_refuses_what_json_refuses() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="Circular reference"):
        canonical_json(cyclic)
    with pytest.raises(ValueError, match="Out of range float"):
        canonical_json([float("nan")])
    with pytest.raises(TypeError, match="not JSON serializable"):
        canonical_json({"a": object()})
    assert canonical_json("\x00é") == '"\\u0000é"'


@pytest.mark.parametrize(
    "items", [[], ["a", "b"], [1, True, None, "x"], ("a", 1), [1, 2.5], [1, float("inf")]]
)
def test_lists_of_primitives_cross_as_new_lists(items: list[Any] | tuple[Any, ...]) -> None:
    codec = _codec()
    if any(isinstance(v, float) and v == float("inf") for v in items):
        with pytest.raises(CodecError):
            codec.encode(items)
        with pytest.raises(CodecError):
            codec.decode(list(items))
        return
    encoded = codec.encode(items)
    assert encoded == list(items) and type(encoded) is list and encoded is not items
    decoded = codec.decode(encoded)
    assert decoded == encoded and decoded is not encoded
