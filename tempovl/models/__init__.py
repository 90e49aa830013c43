"""Model families; importing this package registers them."""

from tempovl.models import hero, hero_baselines, hitea  # noqa: F401  (registers hero, hero-ftrm, hero-htrm, hitea)
