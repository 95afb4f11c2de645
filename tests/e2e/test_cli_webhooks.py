"""``tenure webhook disable|enable`` against a real server: the text each prints and
the subscription's state the API then shows."""

from __future__ import annotations

from support.remote import ok_json, tenure
from support.server import Server


def test_disable_then_enable_prints_the_new_state_and_the_api_shows_it(
    own_server: Server,
) -> None:
    made = ok_json(tenure(own_server, "webhook", "add", "https://93.184.215.14/hook", "-o", "json"))
    hook = made["id"]
    with own_server.client(own_server.owner_key()) as owner:

        def enabled() -> bool:
            [found] = [h for h in owner.get("/v1/webhooks").json()["webhooks"] if h["id"] == hook]
            return bool(found["enabled"])

        paused = tenure(own_server, "webhook", "disable", hook)
        assert (paused.returncode, paused.stdout) == (0, f"{hook} disabled\n"), paused.stderr
        assert not enabled()
        resumed = ok_json(tenure(own_server, "webhook", "enable", hook, "-o", "json"))
        assert (resumed["id"], resumed["enabled"]) == (hook, True)
        assert enabled()
