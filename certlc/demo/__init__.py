"""``certlc demo``: the whole pipeline on the local stack, end to end, with a summary, through one CA.

It seeds a vault the way an operator's vault looks on the day certlc is installed (an
expired certificate, one expiring within 30 days, a healthy one, a Key Vault self-signed
one, one whose CA template was retired, and a year-long one already inside its renewal
window but not yet within Key Vault's 30-day expiry event, so only the sweep can find it),
renews one whose key may be exposed with ``certlc renew --compromise`` and has the CA's operator
revoke another behind certlc's back (each first issued by the demo's CA with ``--force``),
moves the Key Vault clock forward so Key Vault raises its events, lets Event Grid → queue →
renew → merge → notify run, runs the sweep, ingests the status snapshot and writes the
dashboard.

``--ca`` picks the CA the stack renews with, started in the demo's folder: ``local`` (the default, in
process), ``acme`` (pebble), ``cfssl`` (``cfssl serve``) or ``adcs`` (the local ``/certsrv`` over NTLM with
Extended Protection, and an OpenLDAP slapd holding the certificate templates). Every CA gets the same seven
certificates with the same expected outcomes (``EXPECTED``); the retired template is refused the way each CA
refuses: a profile it does not offer, the name pebble's policy blocks, or the AD CS denial in the CA's words.
AD CS gets two more: a certificate known only by its v2 template OID (no tag: renewed through the directory
lookup) and one whose template needs a CA manager's approval, which the demo approves, as a manager would,
once the audit trail shows it waiting, then sees merged on the next poll. The one revoked behind certlc's back
goes to the local CA and AD CS only: pebble and cfssl publish nothing certlc can read of such a revocation
(``LEFT_OUT``: a line under the table says why).

Where the certificates are served (whatever the CA): a real nginx serves shop-expiring under two names, both
installed by ``certlc sync`` before the renewal; after it, ``certlc sync`` (``--reload`` nginx, ``--verify`` the
endpoint) keeps one in step and the other is left behind, so the target check after the sweep raises its
``serving`` alert. An Application Gateway in the consumers emulator names web-expired's version; the stack runs with
``CERTLC_ROLLOUT=update``, so that check moves the reference to the renewed version, and the next check sees the
gateway's TLS front serve it. The SERVED column is the status snapshot's ``Served``, as certlc recorded it.

Every outcome it prints is observed, never worked out: from the audit trail, the sweep's report, Key Vault's
versions, the snapshot, the alerts received and the gateway's resource. A certificate nothing recorded is "not
examined by the pipeline"; the snapshot's outlook columns say what happens next, for reading only. Exit code 0 only
when every certificate ended as expected; Ctrl-C stops every server it started and exits 130.

The command is here; the rest is split by what it is about: ``seeds`` (the certificates and what each CA must
record), ``ca_servers``, ``endpoints`` (nginx, certlc sync, the gateway), ``scenario`` (the run), ``assessment``
(each outcome read from the evidence) and ``printing`` (the table and its legend).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from certlc.demo.assessment import assess
from certlc.demo.printing import print_summary, progress
from certlc.demo.scenario import play
from certlc.demo.seeds import CAS
from certlc.stack_files import DEMO_DIR

INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C (128 + SIGINT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEMO_DIR,
        help=f"state folder, wiped first (default {DEMO_DIR}: the repository's .local/demo, or CERTLC_DEMO_DIR)",
    )
    parser.add_argument(
        "--ca",
        choices=CAS,
        default="local",
        help="the CA to renew with: local (in process, the default), acme (pebble), cfssl (cfssl serve) or adcs "
        "(the local /certsrv over NTLM and a slapd with the certificate templates); started in the state folder",
    )
    parser.add_argument(
        "--keyvault-pending-version",
        choices=("placeholder", "previous"),
        default="placeholder",
        help="the Key Vault emulator's --pending-version (default placeholder)",
    )


def run(args: argparse.Namespace) -> int:
    as_json = args.output == "json"  # -o json, or its alias --json
    say = progress(quiet=as_json)
    directory = Path(args.dir).resolve()  # every path it prints or writes in the summary is absolute
    shutil.rmtree(directory, ignore_errors=True)
    log_file = directory / "demo.log"
    started = time.monotonic()
    try:
        with _logging_to(log_file):
            evidence, dashboard = play(directory, args.keyvault_pending_version, say, args.ca)
    except KeyboardInterrupt:  # every server was stopped on the way out, each by the context that started it
        print(f"certlc demo: interrupted; the servers it started are stopped (logs: {log_file})", file=sys.stderr)
        return INTERRUPTED
    elapsed = time.monotonic() - started
    outcomes = assess(evidence)
    ok = all(o.ok for o in outcomes)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "ca": evidence.ca,
                    "seconds": round(elapsed, 1),
                    "dashboard": str(dashboard),
                    "approved": evidence.approved,
                    "certificates": [asdict(o) for o in outcomes],
                    "left_out": evidence.left_out,
                },
                indent=2,
            )
        )
    else:
        print_summary(outcomes, elapsed, dashboard, evidence.left_out)
        print(f"logs: {log_file}")
    if not ok:
        wrong = "; ".join(f"{o.name}: {o.detail}" for o in outcomes if not o.ok)
        print(f"demo FAILED: {wrong}", file=sys.stderr)
    return 0 if ok else 1


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """The functions' and the audit trail's log lines go to a file; the terminal shows progress and the summary."""
    import logging

    from certlc.host.host import quiet_http_logging

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    quiet_http_logging()
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
