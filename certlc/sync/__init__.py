"""``certlc sync``: keeps a server's PEM files in step with a certificate in Key Vault.

For servers without the Key Vault VM extension: fetch the latest version's secret, write the
files atomically when the thumbprint changed, reload the server, check it serves the new
certificate, and put the previous files back when it does not.
"""
