"""Canonical URL keys: one key per article whatever tracking, AMP or scheme variant links to it.

The key has no scheme (``//example.com/path?a=1``): http and https links to the same page
fold together. See ``docs/dedup.md`` for the full list of rules.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit

from w3lib.url import canonicalize_url

__all__ = [
    "AMP_PARAMS",
    "TRACKING_PARAMS",
    "TRACKING_PREFIXES",
    "canonical_url",
    "url_key",
]

# Query parameters that only say how a reader arrived (ads, newsletters, share buttons,
# analytics). Compared case-insensitively after percent-decoding the name.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        # ad and social click ids
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid",
        "twclid", "ttclid", "li_fat_id", "igshid", "igsh", "epik",
        # newsletters and marketing automation
        "mc_cid", "mc_eid", "_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp",
        "hsctatracking", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "wt.mc_id",
        # publishers' campaign and referrer tags
        "ref", "ref_src", "ref_url", "referrer", "cmpid", "cmp", "xtor", "ocid", "icid",
        "ncid", "s_cid", "smid", "smtyp", "sr_share", "guccounter", "guce_referrer",
        "guce_referrer_sig", "__twitter_impression",
        # Alibaba/Taobao and Chinese share links (WeChat, Weibo, Bilibili)
        "spm", "scm", "spm_id_from", "vd_source", "share_source", "share_medium",
        "share_from", "from", "isappinstalled", "wfr",
        # AMP cache viewer
        "usqp", "amp_js_v", "amp_gsa", "ampshare",
    }
)  # fmt: skip

# Parameter families: any name starting with one of these is tracking
# (Google Analytics utm_*, AT Internet at_*, Piwik pk_*, Matomo mtm_*, HubSpot ads hsa_*,
# comScore ns_*).
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "at_", "pk_", "mtm_", "hsa_", "ns_")

# ``name -> values`` that select an AMP rendering of the same page.
AMP_PARAMS: dict[str, frozenset[str]] = {
    "amp": frozenset({"", "1", "true", "yes"}),
    "outputtype": frozenset({"amp"}),
}

_HOST_PREFIXES = ("www.", "m.", "amp.")
_DEFAULT_PORTS = {"http": 80, "https": 443}  # either is dropped: the key has no scheme
_AMP_CACHE = re.compile(r"^/[cv]/(?P<secure>s/)?(?P<rest>.+)$")
_AMP_HTML = re.compile(r"\.amp(\.html?)$", re.IGNORECASE)
_SESSION = re.compile(r";jsessionid=[^/]*", re.IGNORECASE)
_SLASHES = re.compile(r"/{2,}")


def _drop_param(pair: str) -> bool:
    name, _, value = pair.partition("=")
    name = unquote_plus(name).strip().lower()
    if not name:
        return True
    if name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES):
        return True
    amp_values = AMP_PARAMS.get(name)
    return amp_values is not None and unquote_plus(value).strip().lower() in amp_values


def _clean_query(query: str) -> str:
    return "&".join(p for p in query.split("&") if p and not _drop_param(p))


def _clean_host(host: str) -> str:
    host = host.rstrip(".")
    for prefix in _HOST_PREFIXES:
        rest = host.removeprefix(prefix)
        if rest != host and "." in rest:
            host = rest
    return host


def _clean_path(path: str) -> str:
    path = _SLASHES.sub("/", _SESSION.sub("", path))
    segments = [s for s in path.split("/") if s.lower() != "amp"]
    if segments:
        segments[-1] = _AMP_HTML.sub(r"\1", segments[-1])
    path = "/".join(segments).rstrip("/")
    return path if path.startswith("/") else "/" + path


def _unwrap_amp_cache(url: str) -> str | None:
    """``https://x-com.cdn.ampproject.org/c/s/x.com/a`` -> ``https://x.com/a``."""
    parts = urlsplit(url)
    if not (parts.hostname or "").endswith(".cdn.ampproject.org"):
        return None
    match = _AMP_CACHE.match(parts.path)
    if match is None:
        return None
    scheme = "https" if match["secure"] else "http"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{match['rest']}{query}"


def canonical_url(url: str) -> str:
    """Return the scheme-less canonical key of an absolute http(s) URL.

    Anything else (relative links, ``tag:`` URIs, unparseable text) comes back stripped
    but otherwise unchanged; use :func:`url_key` to get ``None`` for those instead.
    """
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
            return raw
        inner = _unwrap_amp_cache(raw)
        if inner is not None:
            return canonical_url(inner)
        cleaned = parts._replace(query=_clean_query(parts.query), fragment="").geturl()
        canon = urlsplit(canonicalize_url(cleaned))
        host = canon.hostname or ""
        port = canon.port
    except ValueError:  # bad port, bad IPv6 literal, bad IDN label
        return raw
    host = f"[{host}]" if ":" in host else _clean_host(host)
    if port is not None and port not in _DEFAULT_PORTS.values():
        host = f"{host}:{port}"
    query = f"?{canon.query}" if canon.query else ""
    return f"//{host}{_clean_path(canon.path)}{query}"


def url_key(link: str | None) -> str | None:
    """The canonical key of *link*, or ``None`` when it is not an absolute http(s) URL."""
    if not link:
        return None
    key = canonical_url(link)
    return key if key.startswith("//") else None
