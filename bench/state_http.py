"""Benchmark 14e (``--only state``, issue 17): ``POST /v1/check`` with ``"proof": true``
vs the same checks without, over HTTP.

The store, bodies, server process and ``wrk`` runs of benchmark 5
(``bench.checks_http``): one uvicorn worker on a demo store, 32 connections, the
same 16 rotating bodies (licenses by serial and by license key, allowed and denied)
with and without ``"proof": true``, rounds alternating. A proven answer carries the
signed checkpoint and each row the decision read with its path to the state root.
Goal: ratio >= 0.5.
"""

from __future__ import annotations

import json
import os

from bench import checks_http
from bench.checks_http import (
    CHECK_APP,
    REPO,
    Closed,
    alternate,
    closed_rate,
    preflight,
    running,
    write_wrk_script,
    wrk,
)
from bench.common import Options, Result, Timer, temp_dir

GOAL = 0.5


def proof_over_http(opts: Options) -> Result:
    size = checks_http.sizes(opts)
    rounds = 2 if opts.quick else 3
    with temp_dir("state-http", opts.tmp_root) as workdir:
        timer = Timer()
        data_dir = workdir / "data"
        work = checks_http.prepare(data_dir, size.events)
        proven_bodies = [json.dumps({**json.loads(b), "proof": True}) for b in work.bodies]
        auth = f"Bearer {work.api_key}"
        plain = write_wrk_script(workdir / "plain.lua", work.bodies, auth)
        proven = write_wrk_script(workdir / "proof.lua", proven_bodies, auth)
        print(
            f"  store: {size.events:,} demo events in {timer.elapsed():.1f} s; uvicorn x1; "
            f"wrk {checks_http.CONNECTIONS} connections, {size.warmup:g} s warmup + "
            f"{rounds} rounds of {size.seconds:g} s each, with and without proof alternating"
        )
        env = dict(os.environ, TENURE_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
        env.pop("TENURE_AUDIT_BATCH_MAX", None)
        headers = {"Content-Type": "application/json", "Authorization": auth}
        with_proof: list[Closed] = []
        without: list[Closed] = []
        with running("uvicorn", 1, CHECK_APP, env, workdir, "state proof") as srv:
            preflight(srv, proven_bodies, headers, check=True)
            preflight(srv, work.bodies, headers, check=True)
            wrk(srv, proven, size.warmup)
            wrk(srv, plain, size.warmup)
            alternate([(srv, proven, with_proof), (srv, plain, without)], rounds, size.seconds)
    ratio_rate, base = closed_rate(with_proof), closed_rate(without)
    errors = sum(r.errors for r in with_proof + without)
    result = Result(
        'checks over HTTP with "proof": true',
        ratio_rate,
        "req/s",
        base,
        "the same checks without proof",
        "req/s",
        f"goal >= {GOAL:.2f}",
        errors == 0 and ratio_rate >= GOAL * base,
    )
    result.notes.append(
        f"errors: {errors}; p99 (closed loop) with proof {with_proof[-1].p99_ms:.1f} ms, "
        f"without {without[-1].p99_ms:.1f} ms; each proven answer carries the checkpoint "
        "note and the license and plan-version rows with their paths"
    )
    result.show()
    return result
