"""What requests takes from the environment (proxies, the CA bundle), read once instead of on every request.

With ``trust_env`` on, requests reads the proxy variables (``HTTPS_PROXY``, ``NO_PROXY``...) again on every request
by walking the whole process environment, a measurable share of a small page's round trip. The client's session
therefore has ``trust_env`` off and passes, with each request, what these functions resolved once by requests' own
rules: the host's proxies (a host listed in ``NO_PROXY`` goes direct) and, for ``verify: true``, the bundle named by
``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``) when one is set. ``.netrc`` credentials, the one other thing
``trust_env`` brings, are never wanted: the client authenticates itself.
"""

from __future__ import annotations

import os

import requests.utils

__all__ = ["environment_proxies", "environment_verify"]


def environment_proxies(url: str) -> dict[str, str]:
    """The proxies the environment gives requests to ``url`` (empty when it goes direct, e.g. listed in NO_PROXY)."""
    proxies: dict[str, str] = requests.utils.get_environ_proxies(url)
    return proxies


def environment_verify(verify: bool | str | None) -> bool | str:
    """``verify`` as requests resolves it from the environment: a bundle path stays as given.

    ``True`` (or ``None``, requests' "unset") becomes the bundle named by ``REQUESTS_CA_BUNDLE`` or
    ``CURL_CA_BUNDLE`` when either is set, else ``True`` (requests' own bundle).
    """
    if verify is True or verify is None:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify
