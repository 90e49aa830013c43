"""Pre-training and downstream tasks; importing this package registers them."""

from tempovl.tasks import hitea_pretrain  # noqa: F401
from tempovl.tasks import toy  # noqa: F401
