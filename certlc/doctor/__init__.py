"""``certlc doctor``: read-only checks that a deployment can do its work, with the app's own settings and identity.

gather → decide → act, as everywhere in certlc:

- **gather:** each probe makes the few read-only calls its check needs (``vaults.py``, ``queues.py``, ``locks.py``,
  ``logs.py``, ``cas.py``, and ``deployment.py``: the Function App through Azure Resource Manager), with a deadline
  on every call, and returns what it saw;
- **decide:** a pure function per check turns what was seen into a ``CheckResult`` (ok, detail, the fix), and
  ``report.exit_code`` decides the exit code;
- **act:** ``cli.py`` prints one line per check (or JSON).

Nothing here creates, writes or deletes anything: no queue or container is created, no lease is taken, no row is
ingested, no CA is asked to sign.
"""
