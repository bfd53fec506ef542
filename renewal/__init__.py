"""Renewal of Key Vault certificates issued by CAs Key Vault does not integrate with."""
