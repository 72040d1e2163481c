from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="Sku")


@_attrs_define
class Sku:
    """A SKU: a size and color of a product, its price and its stock (as the feed has it).

    Attributes:
        sku_id (int):
        product_id (int):
        size (str):
        color (str):
        price (int): In minor units of `currency` (cents).
        currency (str):
        stock (int): How many are in stock.
    """

    sku_id: int
    product_id: int
    size: str
    color: str
    price: int
    currency: str
    stock: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        sku_id = self.sku_id

        product_id = self.product_id

        size = self.size

        color = self.color

        price = self.price

        currency = self.currency

        stock = self.stock

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "sku_id": sku_id,
                "product_id": product_id,
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
        sku_id = d.pop("sku_id")

        product_id = d.pop("product_id")

        size = d.pop("size")

        color = d.pop("color")

        price = d.pop("price")

        currency = d.pop("currency")

        stock = d.pop("stock")

        sku = cls(
            sku_id=sku_id,
            product_id=product_id,
            size=size,
            color=color,
            price=price,
            currency=currency,
            stock=stock,
        )

        sku.additional_properties = d
        return sku

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
