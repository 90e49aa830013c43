"""Pre-training and downstream tasks; `tempovl.registry` imports the modules that register them."""
