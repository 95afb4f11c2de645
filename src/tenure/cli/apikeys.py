"""``tenure apikey create|list|revoke|retire-bootstrap``: the account's API keys over
HTTP, and ``revoke --data-dir/--db``: a key revoked directly on the storage."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from tenure.cli.approvals import print_approval_requested
from tenure.cli.client import (
    ApiError,
    Endpoint,
    Remote,
    UrlOption,
    emit_answer,
    emit_json,
    endpoint_options,
    print_table,
)
from tenure.cli.common import Output, OutputOption, emit, out
from tenure.cli.local import Account, DataDir, Storage, local_runtime, settings, storage_options
from tenure.config import Settings
from tenure.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from tenure.service.apikeys import BOOTSTRAP_FILE, ROLES, key_id_of
from tenure.service.handlers.apikeys import revoke_on_storage

MANAGE_RULES = (
    "Only owner and admin keys may manage API keys: an owner key may create and revoke "
    "keys of every role; an admin key those of every role but owner."
)

app = typer.Typer(
    help="API keys of the account: create, list, revoke, retire the bootstrap key.\n\n"
    "A new key is shown once, when it is created, and the service stores only its "
    f"hash: it cannot be shown again. {MANAGE_RULES} Roles: {', '.join(ROLES)}. "
    "A key acts for the key that created it in the two-person rule: make each "
    "person's key with the bootstrap owner key.",
    no_args_is_help=True,
)


def _check_role(ctx: typer.Context, value: str) -> str:
    """A usage error (exit 2) for a role the service does not know.

    Shown here and turned into ``typer.Exit(2)``: ``main.run()`` passes an exit code
    through, whatever click flavour the installed Typer raises its usage errors with.
    """
    if value not in ROLES:
        error = typer.BadParameter(
            f"{value!r} is not a role; use one of {', '.join(ROLES)}.",
            ctx=ctx,
            param_hint=["--role"],
        )
        error.show()
        raise typer.Exit(error.exit_code)
    return value


RoleOption = Annotated[
    str,
    typer.Option(
        "--role",
        callback=_check_role,
        help=f"Role of the new key: one of {', '.join(ROLES)} (owner only with an owner key).",
    ),
]
NameOption = Annotated[
    str, typer.Option("--name", help="A name for people, e.g. 'ci pipeline' (1-200 chars).")
]
KeyId = Annotated[str, typer.Argument(metavar="KEY_ID", help="API key id (key_…).")]


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _key_lines(key: dict[str, Any]) -> list[str]:
    return [
        f"  id       {_text(key.get('id'))}",
        f"  role     {_text(key.get('role'))}",
        f"  name     {_text(key.get('name'))}",
    ]


@app.command("create")
@endpoint_options
def create(
    role: RoleOption,
    name: NameOption,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Create an API key and print it once, with its id and role.

    The key is shown only now: the service stores just its hash, so keep it at once.

    An owner key may create keys of every role; an admin key every role but owner.
    """
    _, created = endpoint.remote().post("/v1/apikeys", {"role": role, "name": name})
    emit_answer(
        created,
        output,
        lambda: [
            f"created API key {created.get('id')}",
            *_key_lines(created)[1:],
            f"KEY: {created.get('key')}",
            "(the key is shown once: it is stored only as a hash and cannot be shown again)",
        ],
    )


@app.command("list")
@endpoint_options
def list_command(endpoint: Endpoint = Endpoint(), output: OutputOption = Output.text) -> None:
    """List the account's API keys, revoked ones too, oldest first (never the keys).

    "created by" is the key that created each one ("-": the bootstrap or first owner
    key, or a key older than key lineage). Needs an owner or admin key.
    """
    answer = endpoint.remote().get("/v1/apikeys")
    if output is Output.json:
        emit_json(answer)
        return
    keys: list[dict[str, Any]] = answer.get("apikeys", [])
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("role", no_wrap=True)
    table.add_column("name")
    table.add_column("created", no_wrap=True)
    table.add_column("revoked", no_wrap=True)
    table.add_column("created by", no_wrap=True)
    for key in keys:
        table.add_row(
            _text(key.get("id")),
            _text(key.get("role")),
            _text(key.get("name")),
            _text(key.get("created_at")),
            _text(key.get("revoked_at")),
            _text(key.get("created_by")),
        )
    print_table(table)
    active = sum(1 for key in keys if key.get("revoked_at") is None)
    out.print(f"{len(keys)} key(s), {active} active", highlight=False, markup=False)


ReasonOption = Annotated[
    str | None,
    typer.Option(
        "--reason", help="With --data-dir/--db (required there): why, recorded in the audit log."
    ),
]
ForceOption = Annotated[
    bool,
    typer.Option(
        "--force",
        help="With --data-dir/--db: revoke it even if it is the account's last active "
        "owner key (then no key of the account can manage keys).",
    ),
]


@app.command("revoke")
@endpoint_options
@storage_options
def revoke(
    key_id: KeyId,
    storage: Storage = Storage(),
    account: Account = "default",
    reason: ReasonOption = None,
    force: ForceOption = False,
    endpoint: Endpoint = Endpoint(),
    output: OutputOption = Output.text,
) -> None:
    """Revoke an API key: from then on it gets 401. Revoking it again changes nothing.

    Over HTTP: an owner key may revoke keys of every role; an admin key every role but
    owner. The account's last active owner key cannot be revoked. Revoking another
    principal's owner or admin key needs a second principal's approval (two-person
    rule): this prints the request, and `tenure approval approve` with another person's
    key revokes (not the key to be revoked, nor a key made by or with this one).

    On the storage (--data-dir DIR or --db URL, with --reason): revokes it directly,
    without approval, even while the service runs: the way out when the two-person
    rule cannot revoke a stolen key. The audit log names the storage operator
    (storage:<user>). The last active owner key only with --force.
    """
    if storage.named:
        _revoke_on_storage(key_id, storage.settings(), account, reason, force, output)
        return
    if reason is not None or force:
        raise InvalidInput(
            "--reason and --force are for revoking on the storage (--data-dir or --db)",
            field="reason",
        )
    response = endpoint.remote().request("DELETE", f"/v1/apikeys/{quote(key_id, safe='')}")
    revoked = response.json()
    if response.status_code == 202:
        print_approval_requested(revoked, output)
        return
    emit_answer(
        revoked,
        output,
        lambda: [
            f"revoked API key {revoked.get('id')}",
            *_key_lines(revoked)[1:],
            f"  created  {_text(revoked.get('created_at'))}",
            f"  revoked  {_text(revoked.get('revoked_at'))}",
        ],
    )


def _revoke_on_storage(
    key_id: str, s: Settings, account: str, reason: str | None, force: bool, output: Output
) -> None:
    """``revoke`` with --data-dir/--db: ``revoke_on_storage`` as this OS user."""
    if reason is None:
        raise InvalidInput("--reason is required to revoke a key on the storage", field="reason")
    operator = getpass.getuser()
    with local_runtime(s, migrate=False) as runtime:
        try:
            revoked = revoke_on_storage(
                runtime.store, account, key_id, operator, reason, force=force
            )
        except Conflict as refused:
            raise Conflict(f"{refused.message} (or pass --force)", field="id") from None
    emit(
        output,
        {**revoked, "principal": f"storage:{operator}"},
        f"revoked API key {revoked['id']} ({revoked['role']}, {revoked['name']!r}) on the "
        f"storage as storage:{operator}: it gets 401 from now on",
    )


def _bootstrap_key(data_dir: DataDir) -> tuple[str, Path]:
    """The bootstrap owner key the service wrote to the data directory, and its file."""
    key_file = settings(data_dir, None).data_dir / BOOTSTRAP_FILE
    try:
        key = key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise NotFound(
            f"no bootstrap owner key at {key_file}: it was retired already, or pass the "
            "service's --data-dir"
        ) from None
    return key, key_file


@app.command("retire-bootstrap")
def retire_bootstrap(
    data_dir: DataDir = None,
    url: UrlOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Revoke the bootstrap owner key and delete <data-dir>/bootstrap-owner.key.

    First create at least one other owner key (tenure apikey create --role owner):
    the account's last active owner key cannot be revoked. Better, create each
    person's key with the bootstrap key before retiring it: keys it made are
    different principals and approve each other's requests (two-person rule).

    The bootstrap key (read from the data directory) revokes itself, which needs no
    approval; run this where the service's data directory is.
    """
    key, key_file = _bootstrap_key(data_dir)
    try:
        revoked = Remote(url, key).delete(f"/v1/apikeys/{key_id_of(key)}")
    except ApiError as exc:
        if exc.status == 401:
            raise Unauthenticated(
                f"the key in {key_file} is not a valid key of this service (revoked "
                "already?); delete the file if so"
            ) from None
        raise
    key_file.unlink()
    emit_answer(
        {**revoked, "removed": str(key_file)},
        output,
        lambda: [
            f"retired the bootstrap owner key {revoked.get('id')} "
            f"(revoked at {_text(revoked.get('revoked_at'))})",
            f"removed {key_file}",
        ],
    )
