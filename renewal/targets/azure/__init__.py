"""The Azure services that serve a certificate: found through the official management SDKs (``discover``), and a
pinned reference moved to a new version (``rollout``). SDKs are imported inside functions: the Functions host imports
``renewal`` at start-up."""
