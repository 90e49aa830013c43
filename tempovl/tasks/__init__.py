"""Pre-training and downstream tasks; importing this package registers them."""
