# The two commands a new user needs:  make demo  and  make test.
# Each installs what it needs: a virtualenv with the requirements, Azurite (npm), and
# pebble, cfssl and Chromium (apt) when they are missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test lint bench clean package

# What the demo runs: certlc with the extra its `certlc sync` step needs, and the Azure stand-ins with the local stack (localazure/, which servers do not install;
# it brings jsonschema and pyspnego). Nothing is compiled: all wheels but certsrv, a pure-Python source package.
$(VENV)/.demo-installed: requirements.txt pyproject.toml localazure/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[sync]' -e localazure
	touch $@

# Everything else the tests and tools need, on top: the Kerberos extra takes minutes, as gssapi is built from source.
$(VENV)/.installed: $(VENV)/.demo-installed requirements-dev.txt requirements-kerberos.txt
	$(PYTHON) localazure/localazure/tools.py install libkrb5-dev gcc  # gssapi (kerberos extra) builds against them
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) -m localazure.tools install azurite
	$(VENV)/bin/certlc demo

# The whole suite runs with the Key Vault emulator showing a pending renewal as a disabled placeholder
# version (its default); the tests that renew through Key Vault run again with the previous version kept,
# the other way Key Vault may behave (docs/keyvault-emulator.md). Key Vault's 429 has been seen without Retry-After:
# the throttling tests run again with the emulator answering so always, and every other time.
test: lint
	$(PY) -m localazure.tools install azurite pebble cfssl chromium checkov kql slapd systemd-analyze krb5-kdc krb5-admin-server krb5-user sasl-gssapi certbot lego nginx
	$(PY) -m pytest
	CERTLC_TEST_KEYVAULT_PENDING_VERSION=previous $(PY) -m pytest tests/pipeline tests/ingestion tests/sync
	for mode in never mixed; do CERTLC_KEYVAULT_THROTTLE_RETRY_AFTER=$$mode $(PY) -m pytest \
	  tests/emulators/test_keyvault_control.py tests/emulators/test_keyvault_limits.py || exit 1; done

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.installed
	$(PY) -m localazure.tools install azurite pebble certbot lego
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .tools .local test-output

# The zip a zip deploy uploads: the files .funcignore lets through, nothing else (certlc/packaging.py).
# Standard library only, so it needs no virtualenv. PACKAGE_ZIP=path writes it elsewhere.
PACKAGE_ZIP ?= dist/certlc-functionapp.zip
package:
	$(PYTHON) -m certlc.packaging --out $(PACKAGE_ZIP)
