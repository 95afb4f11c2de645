"""What the commands that work on the local storage share: the options naming it
(``--data-dir``, ``--db``, gathered as one ``Storage``; ``--account``), the settings they
make, and the runtime over it, opened for one command and closed when it is done."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from tenure.app.runtime import Runtime, SchemaUse
from tenure.cli.common import gather_options
from tenure.config import Settings

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Directory holding tenure.db, master.key and keys/ "
        "(env TENURE_DATA_DIR; default ./var).",
    ),
]
DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///path); overrides the data dir's tenure.db "
        "(env TENURE_DATABASE_URL).",
    ),
]
Account = Annotated[str, typer.Option("--account", help="Account (tenant) to work on.")]


def settings(data_dir: Path | None, db: str | None, **extra: Any) -> Settings:
    """Settings from the environment, overridden by the options given."""
    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if db is not None:
        overrides["database_url"] = db
    return Settings(**overrides)


@contextmanager
def local_runtime(s: Settings, *, migrate: bool = True) -> Iterator[Runtime]:
    """The runtime over the store ``s`` names, closed when the block ends, also when it
    fails. A command never upgrades a schema: on an older one (or a newer release's)
    it fails with one line before it reads or writes anything (run ``tenure db
    upgrade``). With ``migrate`` it gives a new database its schema; ``migrate=False``
    for commands that only read or repair: they fail on a missing database instead."""
    runtime = Runtime.open(s, schema=SchemaUse.CREATE if migrate else SchemaUse.EXISTING)
    try:
        yield runtime
    finally:
        runtime.close()


@dataclass(frozen=True)
class Storage:
    """The storage a command works on: ``--data-dir`` and ``--db`` as given (``None``
    for one not given: the environment's, else ./var)."""

    data_dir: Path | None = None
    db: str | None = None

    @property
    def named(self) -> bool:
        """Whether ``--data-dir`` or ``--db`` was given."""
        return self.data_dir is not None or self.db is not None

    def settings(self) -> Settings:
        """``settings`` with these options."""
        return settings(self.data_dir, self.db)

    def open(self, *, migrate: bool = True) -> AbstractContextManager[Runtime]:
        """``local_runtime`` over this storage."""
        return local_runtime(self.settings(), migrate=migrate)


def storage_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with its ``storage: Storage`` parameter given on the command line as
    ``--data-dir`` and ``--db`` (``gather_options``)."""
    return gather_options(command, "storage", {"data_dir": DataDir, "db": DbUrl}, Storage)
