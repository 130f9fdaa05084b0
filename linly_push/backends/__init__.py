"""Backend contracts and the registry that finds them."""
