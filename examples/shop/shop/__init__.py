"""A tiny shop: orders, and the red packet (coupon) each order gets once per campaign."""
