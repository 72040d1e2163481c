from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="StockChange")


@_attrs_define
class StockChange:
    """A change of stock, applied atomically: `delta` is added to it.

    Attributes:
        delta (int): Added to the stock (negative: taken from it); not 0.
    """

    delta: int

    def to_dict(self) -> dict[str, Any]:
        delta = self.delta

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "delta": delta,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        delta = d.pop("delta")

        stock_change = cls(
            delta=delta,
        )

        return stock_change
