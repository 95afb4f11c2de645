"""``tenure demo seed``."""

from __future__ import annotations

import random
from typing import Annotated

import typer

from tenure.cli.common import Output, OutputOption, emit, progress_bar
from tenure.cli.local import Account, Storage, storage_options
from tenure.errors import Conflict
from tenure.service.demo import demo_license_keys, seed_demo
from tenure.service.replay import digest_of

app = typer.Typer(help="Demo data.", no_args_is_help=True)


@app.command("seed")
@storage_options
def seed(
    events: Annotated[
        int, typer.Option("--events", min=1, help="Number of events to append.")
    ] = 1000,
    seed_value: Annotated[int, typer.Option("--seed", help="Same seed, same events.")] = 1,
    storage: Storage = Storage(),
    account: Account = "default",
    output: OutputOption = Output.text,
) -> None:
    """Fill an empty account with a realistic, deterministic workload (catalog, customers,
    licenses and their lifecycle) through the normal command path. Demo license keys are
    derived from the seed: never seed a production account."""
    with storage.open() as runtime:
        with runtime.store.read() as tx:
            head = tx.ledger.head(account)
        if head is not None and head.size:
            raise Conflict(
                f"account {account} already has {head.size} events; seed an empty account"
            )
        ledger = runtime.ledger(
            random_bytes=random.Random(seed_value).randbytes,  # noqa: S311 - deterministic demo ids
            license_key_hash=demo_license_keys(seed_value).key_hash,
        )
        with ledger, progress_bar("seeding", events) as update:
            report = seed_demo(ledger, events, seed_value, account, progress=update)
        final = digest_of(runtime.store, account)
    emit(
        output,
        {"account": account, "events": report.events, "size": final.size, "digest": final.digest},
        f"seeded {report.events} events ({report.retries} idempotent retries) into {account}\n"
        f"{final.digest}  size={final.size}",
    )
