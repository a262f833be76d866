"""The WebShop family: ``WebShop-v0`` with a generated catalog and an embedded BM25 index."""

from environments.webshop.catalog import Catalog, Goal, Product, load_webshop_items
from environments.webshop.env import WebShopEnv, WebShopProtocol
from environments.webshop.reward import purchase_score

__all__ = ["Catalog", "Goal", "Product", "WebShopEnv", "WebShopProtocol", "load_webshop_items",
           "purchase_score"]
