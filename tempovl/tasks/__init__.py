"""Pre-training and downstream tasks; importing this package registers them."""

from tempovl.tasks import toy  # noqa: F401
