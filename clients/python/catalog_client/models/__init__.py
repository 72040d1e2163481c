"""Contains all the data models used in inputs/outputs"""

from .brand import Brand
from .brand_in import BrandIn
from .field_error import FieldError
from .health import Health
from .problem import Problem
from .product import Product
from .product_in import ProductIn
from .product_page import ProductPage
from .server_time import ServerTime
from .sku import Sku
from .sku_in import SkuIn
from .sku_page import SkuPage
from .stock_change import StockChange

__all__ = (
    "Brand",
    "BrandIn",
    "FieldError",
    "Health",
    "Problem",
    "Product",
    "ProductIn",
    "ProductPage",
    "ServerTime",
    "Sku",
    "SkuIn",
    "SkuPage",
    "StockChange",
)
