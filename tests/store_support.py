"""Store helpers shared by the upgrade tests."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig

from pmsync.sync.store.presence import MIGRATIONS
from pmsync.sync.store.store import Store


def alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def downgrade_one_step(store: Store) -> None:
    """Take `store` one revision back, as an older pmsync left it."""
    config = alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")
