"""``tenure migrate``: move accounts between databases (SQLite ⇄ PostgreSQL), proven;
``start|status|cutover|rollback|finish`` run the dual-write migration of a data dir
(see docs/migration.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

import typer

from tenure.cli.common import Output, OutputOption, emit, err, progress_bar, root_text
from tenure.cli.local import DataDir, settings
from tenure.config import MIGRATION_FILE
from tenure.crypto.files import make_private_dir
from tenure.durability import migration
from tenure.durability.migration import MigrationRefused, MigrationState, Proof
from tenure.durability.mirror import mirror_lock
from tenure.durability.upgrades import open_target, require_current_schema
from tenure.errors import InvalidInput
from tenure.store.databases import open_store, sqlite_file
from tenure.store.table_copy import NOT_IN_DATABASE, TABLE_PLAN, How
from tenure.store.unit import Store

STOPPED = (
    "Run it with every `tenure serve` of this data dir stopped (it refuses while one "
    "mirrors), then start the servers again."
)

From = Annotated[str, typer.Option("--from", help="Source database URL (read, not changed).")]
To = Annotated[
    str, typer.Option("--to", help="Target database URL (no row of the accounts, or --replace).")
]
AccountFilter = Annotated[
    str | None,
    typer.Option("--account", help="Migrate this account only (default: every account)."),
]

ReplaceOption = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Write over the accounts' rows in --to, whose ledgers the source's must "
        "extend (same root at their size and at their latest signed checkpoint).",
    ),
]

app = typer.Typer(
    help="Move accounts between databases (SQLite ⇄ PostgreSQL), every table of them "
    "(docs/migration.md), proven by state digest, Merkle root, state root and rows per "
    "table; or run a dual-write migration: start, status, cutover, rollback, finish.",
    invoke_without_command=True,
)


@app.callback()
def copy(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option("--from", help="Source database URL.")] = None,
    target: Annotated[str | None, typer.Option("--to", help="Target database URL.")] = None,
    account: AccountFilter = None,
    replace: ReplaceOption = False,
    output: OutputOption = Output.text,
) -> None:
    """Copy each account from --from to --to and prove it: the ledger's leaves in
    order, the projection and state map rebuilt by replay, every other table copied
    (webhooks, deployments, drift, audit log, API keys, ...; docs/migration.md lists
    each table), with the same state digest, Merkle root, state root and rows per
    table on both sides. Prints each account as it is proven, then the rows per
    table. Refuses a target that holds any row of the accounts, unless --replace. All
    accounts commit together or not at all; a failed migration removes the file or
    schema it created. The source is only read; stop writers to it first, or use
    `tenure migrate start`."""
    if ctx.invoked_subcommand is not None:
        return
    if source is None or target is None:
        raise InvalidInput("tenure migrate needs --from URL and --to URL (or a subcommand)")
    proofs = _copy(source, target, account, replace=replace)
    _emit_proofs(output, proofs, f"migrated to {target}", tables=True)


@app.command("start")
def start(
    source: From,
    target: To,
    data_dir: DataDir = None,
    replace: ReplaceOption = False,
    output: OutputOption = Output.text,
) -> None:
    """Copy every account (as `tenure migrate` does), then record the migration in
    <data-dir>/migration.json in phase dual-write: the service and the CLI keep using
    the source, and `tenure serve` mirrors each new write to the target (~every
    0.2 s). Start it with the server stopped, or restart the server afterwards.

    The data dir is that of the server using --from: --data-dir (or TENURE_DATA_DIR),
    else the directory of a SQLite --from that is a data dir; other sources need
    --data-dir. Prints what to do next."""
    where = _data_dir_of(data_dir, source)
    found = migration.read_state(where)
    if found is not None and found.phase in ("dual-write", "cutover"):
        raise MigrationRefused(f"a migration is already in phase {found.phase}")
    proofs = _copy(source, target, None, replace=replace)
    migration.write_state(where, MigrationState(source, target, "dual-write"))
    headline = f"dual-write started: the source stays in use ({where / MIGRATION_FILE})"
    _emit_proofs(output, proofs, headline, _next_step("dual-write", where, target), tables=True)


def _data_dir_of(data_dir: Path | None, source: str) -> Path:
    """The data dir of the server that uses ``source``, where ``migration.json`` must be
    for that server to see it: --data-dir (or TENURE_DATA_DIR), else the directory of
    a SQLite source when it is a data dir (holds master.key). Raises ``InvalidInput``
    otherwise, rather than writing the file where no server reads it."""
    s = settings(data_dir, None)
    if "data_dir" in s.model_fields_set:
        return s.data_dir
    path = sqlite_file(source)
    if path is not None and (path.parent / "master.key").exists():
        return path.parent
    raise InvalidInput(
        "migrate start needs --data-dir (or TENURE_DATA_DIR): the data dir of the "
        "server that uses --from, where migration.json tells it to mirror",
        field="data_dir",
    )


def _next_step(phase: str, data_dir: Path, target: str) -> str:
    """What the operator does after a step leaves the migration in ``phase``."""
    serve, then = f"`tenure serve --data-dir {data_dir}`", f"--data-dir {data_dir}`"
    steps = {
        "dual-write": f"(re)start {serve}: it mirrors each write to the target; when "
        f"ready, stop it and run `tenure migrate cutover {then}",
        "cutover": f"start {serve} again: it uses the target and mirrors back to the "
        f"source; to stay, stop it and run `tenure migrate finish {then}, to go back "
        f"`tenure migrate rollback {then}",
        "rolled-back": f"start {serve} again: it uses the source, with no mirror; to "
        f"migrate again, run `tenure migrate start --replace` (over the same target)",
        "done": f"set TENURE_DATABASE_URL={target} for the servers of this data dir, "
        f"remove {data_dir / MIGRATION_FILE}, and start {serve} again",
    }
    return steps.get(phase, "nothing: no migration in progress")


@app.command("status")
def status(data_dir: DataDir = None, output: OutputOption = Output.text) -> None:
    """Print the phase, each account's size on the source and on the target, and the
    lag of the database the mirror copies to."""
    state = _state(data_dir)
    with _stores(state.source, state.target) as (source, target):
        sides = [migration.sizes(source, target, a) for a in migration.source_accounts(source)]
    behind = state.mirror[1] if state.mirror else None
    rows = [
        {
            "account": x.account,
            "source": x.source,
            "target": x.target,
            "lag": abs(x.lag) if behind else 0,
        }
        for x in sides
    ]
    lines = [f"phase     {state.phase}", f"source    {state.source}", f"target    {state.target}"]
    lines.append(f"in use    {'target' if state.current == state.target else 'source'}")
    lines += [f"{r['account']}: source {r['source']}, target {r['target']}" for r in rows]
    next_step = _next_step(state.phase, settings(data_dir, None).data_dir, state.target)
    data = {
        "phase": state.phase,
        "source": state.source,
        "target": state.target,
        "in_use": state.current,
        "accounts": rows,
        "next": next_step,
    }
    emit(output, data, "\n".join([*lines, f"next: {next_step}"]))


def _switch_command(name: str, help_text: str, phase: str, to: str, *, reverse: bool) -> None:
    """Register ``tenure migrate NAME``: sync, prove and switch the data dir from phase
    ``phase`` to ``to`` (towards the source when ``reverse``)."""

    def command(data_dir: DataDir = None, output: OutputOption = Output.text) -> None:
        _switch(data_dir, output, phase, to, reverse=reverse)

    app.command(name, help=help_text)(command)


_switch_command(
    "cutover",
    f"Sync the last writes to the target, prove it equal (digest and "
    f"root), and switch the data dir to the target; the mirror then runs target → source. "
    f"{STOPPED}",
    "dual-write",
    "cutover",
    reverse=False,
)
_switch_command(
    "rollback",
    f"After a cutover: sync the writes made since to the source, "
    f"prove it equal, and switch the data dir back to the source. {STOPPED}",
    "cutover",
    "rolled-back",
    reverse=True,
)


@app.command(
    "finish",
    help=f"After a cutover: stop mirroring; the target stays in use "
    f"(phase done). Then point TENURE_DATABASE_URL at the target and remove "
    f"<data-dir>/migration.json. {STOPPED}",
)
def finish(data_dir: DataDir = None, output: OutputOption = Output.text) -> None:
    state = _state(data_dir)
    if state.phase != "cutover":
        raise MigrationRefused(f"finish needs phase cutover, not {state.phase}")
    s = settings(data_dir, None)
    with _stopped(s.data_dir):
        migration.write_state(s.data_dir, MigrationState(state.source, state.target, "done"))
    next_step = _next_step("done", s.data_dir, state.target)
    emit(
        output,
        {"phase": "done", "database": state.target, "next": next_step},
        f"done: {state.target} in use\nnext: {next_step}",
    )


# ---------------------------------------------------------------- helpers


def _copy(
    source_url: str, target_url: str, account: str | None, replace: bool = False
) -> list[Proof]:
    if source_url == target_url:
        raise InvalidInput("--from and --to name the same database")
    require_current_schema(source_url)
    with (
        migration.undo_on_failure(target_url),
        _stores(source_url, target_url, upgrade_last=True) as (source, target),
        progress_bar("migrating", None) as update,
    ):
        accounts = [account] if account else migration.source_accounts(source)
        return migration.migrate(
            source,
            target,
            accounts,
            replace=replace,
            progress=lambda done, _total: update(done),
            proven=_announce(len(accounts)),
        )


def _announce(total: int) -> Callable[[Proof], None]:
    """A line on stderr as each account is proven (before the commit)."""
    done = 0

    def proven(proof: Proof) -> None:
        nonlocal done
        done += 1
        err.print(
            f"{proof.account}: {proof.size} events copied and proven ({done} of {total})",
            highlight=False,
        )

    return proven


def _switch(data_dir: Path | None, output: Output, phase: str, to: str, reverse: bool) -> None:
    state = _state(data_dir)
    if state.phase != phase:
        raise MigrationRefused(f"{to} needs phase {phase}, not {state.phase}")
    s = settings(data_dir, None)
    ends = (state.target, state.source) if reverse else (state.source, state.target)
    with _stopped(s.data_dir), _stores(*ends) as (source, target):
        proofs = []
        for account in migration.source_accounts(source):
            migration.sync_account(source, target, account)
            proofs.append(migration.prove_equal(source, target, account))
        migration.write_state(s.data_dir, MigrationState(state.source, state.target, to))
    next_step = _next_step(to, s.data_dir, state.target)
    _emit_proofs(output, proofs, f"{to}: {ends[1]} in use", next_step)


def _state(data_dir: Path | None) -> MigrationState:
    where = settings(data_dir, None).data_dir
    state = migration.read_state(where)
    if state is None:
        raise MigrationRefused(
            f"no migration in {where.absolute()} (no {MIGRATION_FILE}): pass the server's "
            "--data-dir, or run `tenure migrate start`"
        )
    return state


@contextmanager
def _stopped(data_dir: Path) -> Iterator[None]:
    """Hold the mirror lock: no server of this data dir mirrors (or writes) meanwhile."""
    make_private_dir(data_dir)
    lock = mirror_lock(data_dir)
    if not lock.acquire():
        raise MigrationRefused("a running `tenure serve` mirrors this data dir: stop it first")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _stores(source: str, target: str, upgrade_last: bool = False) -> Iterator[tuple[Store, Store]]:
    """The stores at ``source`` and ``target``; with ``upgrade_last``, the target's
    schema brought to this release's head."""
    with ExitStack() as opened:
        yield (
            opened.enter_context(open_store(source)),
            opened.enter_context(open_target(target) if upgrade_last else open_store(target)),
        )


def _emit_proofs(
    output: Output,
    proofs: list[Proof],
    headline: str,
    next_step: str | None = None,
    tables: bool = False,
) -> None:
    lines = [headline]
    lines += [
        f"{p.account}: {p.size} events, digest {p.digest}, root {root_text(p.root)}, "
        f"state root {root_text(p.state_root)}"
        for p in proofs
    ]
    accounts = [
        {**p.to_json(), "root": root_text(p.root), "state_root": root_text(p.state_root)}
        for p in proofs
    ]
    data: dict[str, object] = {"accounts": accounts}
    if tables:
        report = _table_report(proofs)
        data["tables"] = report
        lines += _table_lines(report)
    if next_step is not None:
        data["next"] = next_step
        lines.append(f"next: {next_step}")
    emit(output, data, "\n".join(lines))


def _table_report(proofs: list[Proof]) -> list[dict[str, object]]:
    """Every table of the schema: how it was carried, its rows on the target (all
    accounts migrated) and why."""
    return [
        {
            "table": plan.table,
            "how": str(plan.how),
            "rows": sum(p.rows.get(plan.table, 0) for p in proofs),
            "why": plan.why,
        }
        for plan in TABLE_PLAN
    ]


def _table_lines(report: list[dict[str, object]]) -> list[str]:
    width = max(len(str(r["table"])) for r in report)
    lines = [
        "rows of every table on the target (how each is carried: docs/migration.md)",
        f"{'table':<{width}}  {'how':<10}  {'rows':>9}",
    ]
    lines += [f"{r['table']!s:<{width}}  {r['how']!s:<10}  {r['rows']!s:>9}" for r in report]
    skipped = [r for r in report if r["how"] == How.NOT_COPIED]
    lines += [f"not copied: {r['table']}: {r['why']}" for r in skipped]
    lines += [f"not in the database, not copied: {what}: {why}" for what, why in NOT_IN_DATABASE]
    return lines
