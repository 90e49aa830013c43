"""Model families; `tempovl.registry` imports the modules that register them."""
