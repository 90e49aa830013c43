"""Pre-training and downstream tasks; importing this package registers them."""

from tempovl.tasks import (
    hero_caption,  # noqa: F401
    hero_pretrain,  # noqa: F401
    hero_qa,  # noqa: F401
    hero_retrieval,  # noqa: F401
    hitea_caption,  # noqa: F401
    hitea_pretrain,  # noqa: F401
    hitea_qa,  # noqa: F401
    hitea_retrieval,  # noqa: F401
    toy,  # noqa: F401
)
