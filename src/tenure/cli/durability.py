"""``tenure ship``, ``tenure snapshot create|list|verify``, ``tenure restore``: backups
to sites and proven restores, working on storage directly."""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Annotated

import typer

from tenure.app.runtime import Runtime, key_stores
from tenure.cli.common import Output, OutputOption, emit, err, progress_bar
from tenure.cli.local import Account, DataDir, Storage, local_runtime, settings, storage_options
from tenure.cli.restore_text import removed_on_failure, restore_json, restore_text
from tenure.config import Settings
from tenure.crypto.keystore import load_master_key
from tenure.domain.commands import RecordRestore, StartEpoch
from tenure.domain.events import Actor
from tenure.durability import epochs, site_restore, snapshots
from tenure.durability import restore as restoring
from tenure.durability.drill import DrillReport, drill_entry, run_drill
from tenure.durability.shipping import Shipper
from tenure.durability.sites import Site, open_site, open_sites
from tenure.durability.upgrades import open_target
from tenure.errors import ConfigurationError, InvalidInput
from tenure.ledger.note import NoteVerifier
from tenure.service import audit
from tenure.service.ledger import SignRequest, Submission

SiteOption = Annotated[
    list[str] | None,
    typer.Option(
        "--site",
        help="Site URL (file:///path or s3://bucket/prefix); repeatable. Default: TENURE_SITES.",
    ),
]
KeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--key",
        envvar="TENURE_LEDGER_KEY",
        metavar="KEY",
        help="Trusted ledger verifier key (name+hash+base64), as `tenure ledger key` "
        "prints it; repeatable (in the variable: separated by white space). "
        "Default: the key in the data dir's key store.",
    ),
]

snapshot_app = typer.Typer(
    help="Signed snapshots of the projection at sites.", no_args_is_help=True
)


def _sites(s: Settings, urls: list[str] | None) -> list[Site]:
    chosen = urls or s.site_urls()
    if not chosen:
        raise ConfigurationError("no site: pass --site URL or set TENURE_SITES")
    return open_sites(chosen)


def _verifiers(
    s: Settings, account: str, keys: list[str] | None, site: Site | None = None
) -> list[NoteVerifier]:
    """The trusted ledger keys: ``--key``, or the data dir's key store (which a
    restore needs, not the database it may be replacing): the key of the account's
    origin and of each later epoch ``site`` holds (see ``epochs``)."""
    if keys:
        return [NoteVerifier.from_key_string(key) for key in keys]
    origins = [s.ledger_origin(account)]
    for _ in range(1, epochs.current(site, account) if site else 1):
        origins.append(epochs.next_origin(origins[-1]))
    secret = s.master_key.get_secret_value() if s.master_key else None
    missing = ConfigurationError(
        f"no ledger key for {origins[-1]} in the key store of {s.data_dir}: pass --key "
        "(or set TENURE_LEDGER_KEY) with what `tenure ledger key` or GET /v1/ledger/key "
        "prints, or --data-dir of the service"
    )
    if secret is None and not (s.data_dir / "master.key").exists():
        raise missing
    store, _ = key_stores(s, load_master_key(s.data_dir, secret))
    if not store.has_ledger_key(origins[-1]):
        raise missing
    return [store.ledger_signer(o).verifier for o in origins if store.has_ledger_key(o)]


@storage_options
def ship(
    storage: Storage = Storage(),
    site: SiteOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Ship every account's events that a site lacks, once (the service does this
    continuously when TENURE_SITES is set)."""
    s = storage.settings()
    with local_runtime(s, migrate=False) as runtime:
        report = Shipper(runtime.store, _sites(s, site), signer=runtime.ledger_signer).ship_once()
    lines = [f"{url}: {n} events shipped" for url, n in report.shipped.items()]
    emit(output, {"shipped": report.shipped, "behind": report.behind}, "\n".join(lines))


@snapshot_app.command("create")
@storage_options
def create(
    storage: Storage = Storage(),
    account: Account = "default",
    site: SiteOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Snapshot the account's projection at its current ledger size, sign it and write
    it to every site."""
    s = storage.settings()
    sites = _sites(s, site)
    with local_runtime(s, migrate=False) as runtime:
        origin, signer = runtime.ledger_signer(account)
        snapshot = snapshots.take(runtime.store, account, origin, signer)
        path = snapshots.publish(snapshot, signer, sites)
    emit(
        output,
        {"path": path, "size": snapshot.size, "digest": snapshot.digest},
        f"snapshot of {account} at {snapshot.size} events: {path}\n  digest {snapshot.digest}",
    )


@snapshot_app.command("list")
def list_command(
    site: Annotated[str, typer.Option("--site", help="Site URL.")],
    account: Account = "default",
    output: OutputOption = Output.text,
) -> None:
    """The signed snapshots of the account at a site, newest first (not verified:
    see ``snapshot verify``)."""
    where = open_site(site)
    found = snapshots.listed(where, epochs.namespace(account, epochs.current(where, account)))
    emit(
        output,
        {"snapshots": [{"size": size, "path": path} for size, path in found]},
        "\n".join(f"{size:>12}  {path}" for size, path in found) or "no snapshots",
    )


@snapshot_app.command("verify")
def verify(
    site: Annotated[str, typer.Option("--site", help="Site URL.")],
    data_dir: DataDir = None,
    account: Account = "default",
    key: KeyOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Prove every snapshot at the site (signature, hash, digest of its rows, its
    signed checkpoint); exit 1 if any fails. Needs only the site and the ledger's
    verifier key: --key or TENURE_LEDGER_KEY (what `tenure ledger key` prints), else
    the key store of --data-dir."""
    s = settings(data_dir, None)
    where = open_site(site)
    verifiers = _verifiers(s, account, key, where)
    results = []
    prefix = epochs.namespace(account, epochs.current(where, account))
    for size, path in snapshots.listed(where, prefix):
        try:
            snapshots.load(where, path, account, verifiers)
            results.append({"size": size, "path": path, "ok": True, "error": None})
        except snapshots.BadSnapshot as exc:
            results.append({"size": size, "path": path, "ok": False, "error": exc.message})
    lines = [
        f"{'ok ' if r['ok'] else 'BAD'} {r['size']:>12}  {r['error'] or r['path']}" for r in results
    ]
    emit(output, {"snapshots": results}, "\n".join(lines) or "no snapshots")
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


def restore(
    site: Annotated[str, typer.Option("--site", help="The site to restore from.")],
    into: Annotated[
        str, typer.Option("--into", help="Database URL to restore into (must hold no ledger).")
    ],
    data_dir: DataDir = None,
    account: Annotated[
        str | None,
        typer.Option(
            "--account", help="Restore only this account (default: every account the site holds)."
        ),
    ] = None,
    at_seq: Annotated[
        int | None,
        typer.Option("--at-seq", min=0, help="Restore the first N events (for investigation)."),
    ] = None,
    at_time: Annotated[
        str | None,
        typer.Option(
            "--at-time",
            help="Restore the events up to this moment (RFC 3339 UTC, e.g. "
            "2026-11-29T02:00:00Z; for investigation).",
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Write over the account's ledger in --into, which the site's must extend "
            "(same root at its size and at its latest signed checkpoint): recovers "
            "missing or damaged events; the target keeps its API keys.",
        ),
    ] = False,
    new_epoch: Annotated[
        bool,
        typer.Option(
            "--new-epoch",
            help="When signed events are lost at every site: keep what the site holds "
            "and start a new epoch (new origin and key) whose first event quotes the "
            "old log's final checkpoint.",
        ),
    ] = False,
    without_audit: Annotated[
        bool,
        typer.Option(
            "--without-audit",
            help="Restore without the site's audit chain (when it cannot be proven and no "
            "other site has it): the restored service starts a new chain.",
        ),
    ] = False,
    key: KeyOption = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why (recorded in the ledger.restored event)."),
    ] = None,
    output: OutputOption = Output.text,
) -> None:
    """Restore every account the site holds (or --account) into an empty database, all
    or nothing, and prove it: every segment checked, the tree equal to the site's
    signed checkpoint (and to the snapshot used), the state digest read back equal to
    the replayed one, the audit chain equal to the site's signed audit head (refused
    if it is not; --without-audit restores without it). Ends with the rows restored
    per table and what is not restored and why. A full restore then appends a
    ledger.restored event per account naming the site and the proof
    (ledger.epoch_started with --new-epoch); --at-seq and --at-time restores (for
    investigation) append nothing. A failed restore removes the SQLite file, or the
    PostgreSQL schema, it created."""
    moment = at_seq is not None or at_time is not None
    if moment and (replace or new_epoch):
        raise InvalidInput("--at-seq and --at-time restore into an empty database only")
    s = settings(data_dir, None)
    source = open_site(site)
    chosen = [account] if account else site_restore.accounts_at(source)
    if not chosen:
        raise restoring.RestoreRefused(f"{site} holds no ledger of any account")
    if moment and len(chosen) > 1:
        raise InvalidInput("--at-seq and --at-time restore one account: name it with --account")
    trusted = {name: _verifiers(s, name, key, source) for name in chosen}
    options = site_restore.Options(
        at_seq, _moment(at_time) if at_time else None, replace, new_epoch, without_audit
    )
    with removed_on_failure(into):
        with open_target(into) as target, progress_bar("restoring", None) as update:
            done = site_restore.restore_accounts(
                source,
                chosen,
                target,
                trusted.__getitem__,
                options,
                announce=lambda name, what: err.print(f"{name}: {what}", highlight=False),
                progress=lambda _stage, count, _total: update(count),
            )
        if not moment:
            commands = [(r.account, _record_command(source, r)) for r in done.reports]
            _record(s, into, commands, reason or f"restore from {site}")
    emit(output, restore_json(done), restore_text(done, into))


def _record_command(source: Site, report: restoring.RestoreReport) -> RecordRestore | StartEpoch:
    """What a full restore records: where from and what it proved (a new epoch
    quotes the checkpoint the restore verified, not one read again)."""
    if not report.lost:
        return RecordRestore(
            source.url, report.size, report.root, report.digest, report.snapshot, report.replaced
        )
    return StartEpoch(
        report.epoch + 1,
        report.signed_note,
        report.size,
        report.lost,
        source.url,
        report.digest,
        report.snapshot,
    )


def _record(
    s: Settings, into: str, commands: list[tuple[str, RecordRestore | StartEpoch]], reason: str
) -> None:
    """Append each account's restore record through the writer of the restored store
    (which refuses if the store is behind a checkpoint it once signed), and sign it."""
    actor = Actor(f"cli:{getpass.getuser()}", "restorer", "local")
    into_settings = s.model_copy(update={"database_url": into})
    with local_runtime(into_settings) as restored, restored.ledger() as ledger:
        for account, command in commands:
            ledger.execute(Submission(account, command, actor, reason=reason))
            ledger.execute(SignRequest(account))


@storage_options
def drill(
    site: Annotated[
        str | None,
        typer.Option("--site", help="Site to drill (default: the first of TENURE_SITES)."),
    ] = None,
    storage: Storage = Storage(),
    account: Account = "default",
    key: KeyOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Restore the latest state from a site into a scratch database, compare its root
    and digest with the live store, and report RTO, RPO and pass/fail (kept for
    GET /v1/drills/latest, and in the audit log); exit 1 if it fails."""
    s = storage.settings()
    where = open_site(site) if site else _sites(s, None)[0]
    verifiers = _verifiers(s, account, key, where)
    with local_runtime(s, migrate=False) as runtime:
        report = run_drill(runtime.store, where, account, verifiers)
        _audit_drill(runtime, report)
    verdict = "PASSED" if report.passed else "FAILED"
    emit(
        output,
        report.to_json(),
        "\n".join(
            [
                f"drill {verdict}: {report.detail}",
                f"  RTO {report.rto_seconds:.1f} s; RPO {report.rpo_events} events, "
                f"{report.rpo_seconds:.1f} s behind the live ledger ({report.site})",
            ]
        ),
    )
    if not report.passed:
        raise typer.Exit(1)


def _audit_drill(runtime: Runtime, report: DrillReport) -> None:
    detail = {"rto_ms": round(report.rto_seconds * 1000), "rpo_events": report.rpo_events}
    entry = drill_entry(report, f"cli:{getpass.getuser()}", "local", detail)
    with runtime.store.write() as tx:
        audit.append(tx.audit, [entry], report.at)


def _moment(text: str) -> datetime:
    """An RFC 3339 moment with a zone; ``InvalidInput`` naming --at-time otherwise."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput("--at-time must be RFC 3339 with a zone, e.g. 2026-11-29T02:00:00Z")
    return moment
