"""A header's layout as one declarative table: its fields in wire order, with their struct format
or bit slice, default, title and meaning (`Header`), compiled once into a packer. `packet.py`
declares every header netsim writes with it; the header views read the same tables."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Union

FieldValue = Union[int, bytes]


@dataclass(frozen=True)
class Field:
    """One header field. `fmt` is its struct code (B, H, I, 6s, 4s); a field inside a `Word`
    has `bits=(shift, width)` instead: its slice of the word read as a big-endian number.
    `show` names how the header view writes the value; `attr` is the attribute of the header
    class that holds it ("" when the class does not keep it: checksums, lengths, constants)."""

    name: str
    title: str
    meaning: str
    fmt: str = ""
    default: FieldValue = 0
    bits: tuple[int, int] | None = None
    show: str = "int"
    attr: str | None = None

    @property
    def attribute(self) -> str:
        return self.name if self.attr is None else self.attr


@dataclass(frozen=True)
class Word:
    """Bit fields that share one struct item (`fmt` B, H or I), most significant first."""

    fmt: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Slot:
    """Where a field sits in its header: `size` bytes at `offset` (-1: to the end of the
    header), and for a bit field, `bits=(shift, width)` within exactly those bytes."""

    field: Field
    offset: int
    size: int
    bits: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return self.field.name

    def read(self, raw: bytes) -> int:
        """The field's number in a header's bytes (bytes fields: their big-endian value)."""
        number = int.from_bytes(raw[self.offset:self.offset + self.size], "big")
        if self.bits is not None:
            shift, width = self.bits
            number = (number >> shift) & ((1 << width) - 1)
        return number


class Header:
    """A header's table, compiled once at import: one `struct.Struct` for the fixed part, the
    offset of every field, and a packer generated from the table (as `dataclasses` generates
    `__init__`), so packing costs what hand-written `struct.pack` costs.

    `tail` is a variable part up to the header length (IP and TCP options), which
    `length_from=(field, unit)` gives: the header length is that field times `unit` bytes."""

    def __init__(self, kind: str, title: str, entries: tuple[Field | Word, ...], tail: Field | None = None,
                 length_from: tuple[str, int] | None = None) -> None:
        self.kind, self.title, self.tail, self.length_from = kind, title, tail, length_from
        self.words = tuple(e if isinstance(e, Word) else Word(e.fmt, (e,)) for e in entries)
        self.struct = struct.Struct("!" + "".join(w.fmt for w in self.words))
        self.size = self.struct.size
        slots: list[Slot] = []
        offset = 0
        for word in self.words:
            width = struct.calcsize("!" + word.fmt)
            for f in word.fields:
                if f.bits is None:
                    slots.append(Slot(f, offset, width))
                    continue
                shift, nbits = f.bits
                first = width - 1 - (shift + nbits - 1) // 8     # the bytes that hold the slice
                last = width - 1 - shift // 8
                slots.append(Slot(f, offset + first, last - first + 1, (shift - 8 * (width - 1 - last), nbits)))
            offset += width
        if tail is not None:
            slots.append(Slot(tail, offset, -1))
        self.slots: tuple[Slot, ...] = tuple(slots)
        self._by_name = {s.name: s for s in slots}
        self.pack_source = self._pack_source()
        namespace: dict[str, object] = {"_pack": self.struct.pack}
        exec(self.pack_source, namespace)          # noqa: S102 (generated from the table above)
        self.pack: Callable[..., bytes] = namespace["pack"]    # type: ignore[assignment]

    def _pack_source(self) -> str:
        params, items = [], []
        for word in self.words:
            parts = []
            for f in word.fields:
                params.append(f"{f.name}={f.default!r}")
                if f.bits is None:
                    parts.append(f.name)
                else:
                    shift, width = f.bits
                    masked = f"({f.name} & {(1 << width) - 1:#x})"
                    parts.append(f"({masked} << {shift})" if shift else masked)
            items.append(" | ".join(parts))
        return f"def pack(*, {', '.join(params)}):\n    return _pack({', '.join(items)})\n"

    def slot(self, name: str) -> Slot:
        return self._by_name[name]

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(s.field for s in self.slots)

    def length(self, raw: bytes) -> int:
        """The header's length in `raw`, options included."""
        if self.length_from is None:
            return self.size
        name, unit = self.length_from
        return self.slot(name).read(raw) * unit

    def unpack(self, raw: bytes) -> dict[str, FieldValue]:
        """Every field's value, by name; the tail (if any) as bytes up to the header length."""
        out: dict[str, FieldValue] = {}
        for word, value in zip(self.words, self.struct.unpack_from(raw)):
            for f in word.fields:
                if f.bits is None:
                    out[f.name] = value
                else:
                    shift, width = f.bits
                    out[f.name] = (value >> shift) & ((1 << width) - 1)
        if self.tail is not None:
            out[self.tail.name] = bytes(raw[self.size:self.length(raw)])
        return out

    def __repr__(self) -> str:
        return f"Header({self.kind!r}, {self.size} bytes, {len(self.slots)} fields)"
