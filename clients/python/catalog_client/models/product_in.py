from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="ProductIn")


@_attrs_define
class ProductIn:
    """A product as a client writes it: both fields required, nothing else accepted.

    Attributes:
        product_name (str): 1 to 200 characters, not only spaces, tabs or line breaks; no NUL.
        brand_id (int): A positive 32-bit id.
    """

    product_name: str
    brand_id: int

    def to_dict(self) -> dict[str, Any]:
        product_name = self.product_name

        brand_id = self.brand_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "product_name": product_name,
                "brand_id": brand_id,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        product_name = d.pop("product_name")

        brand_id = d.pop("brand_id")

        product_in = cls(
            product_name=product_name,
            brand_id=brand_id,
        )

        return product_in
