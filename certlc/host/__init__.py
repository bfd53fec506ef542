"""The Functions-compatible host: runs function_app.py's functions outside Azure, with the Functions host's bindings
(queue triggers and outputs, timers, the Event Grid webhook) and the Python worker's load rules.

Production code: ``certlc worker`` runs it on servers near an internal CA, ``certlc dev`` on a developer's machine.
It imports nothing from ``localazure`` (the stand-ins), which servers do not install.
"""
