from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="SkuIn")


@_attrs_define
class SkuIn:
    """A SKU as a client writes it: all required, nothing else; a new size or color joins.

    Attributes:
        size (str): 1 to 50 characters, not only spaces, tabs or line breaks; no NUL.
        color (str): 1 to 50 characters, not only spaces, tabs or line breaks; no NUL.
        price (int): In minor units of `currency` (cents), 0 or more.
        currency (str): An ISO 4217 code: three capital letters.
        stock (int): How many are in stock.
    """

    size: str
    color: str
    price: int
    currency: str
    stock: int

    def to_dict(self) -> dict[str, Any]:
        size = self.size

        color = self.color

        price = self.price

        currency = self.currency

        stock = self.stock

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "size": size,
                "color": color,
                "price": price,
                "currency": currency,
                "stock": stock,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        size = d.pop("size")

        color = d.pop("color")

        price = d.pop("price")

        currency = d.pop("currency")

        stock = d.pop("stock")

        sku_in = cls(
            size=size,
            color=color,
            price=price,
            currency=currency,
            stock=stock,
        )

        return sku_in
