"""The polling benchmark's upstream: N generated RSS 2.0 feeds on many loopback addresses.

Run by ``bench/poll.py`` as a child process (so it never competes with the measured tool
for the GIL)::

    python bench/poll_server.py --feeds 1000 --hosts 32 --latency-ms 50

It binds one listener per address 127.0.0.2, 127.0.0.3, ... on one shared port, prints one
JSON line ``{"port": P, "hosts": [...]}`` once every listener is up, and serves until its
standard input closes (the parent exited or let go) or ``--max-seconds`` pass.

Feed *i* is ``http://127.0.0.{2 + i % hosts}:P/feeds/{i}.xml`` (``?entries=K`` for another
size): 50 items, about 160 KiB, in English, French or Chinese; one item in seven names
Alibaba or Tencent, one in ten is a wire story that several feeds carry (same title and
text, tracking parameters on the link). ``--style news`` (the default) marks items up as
news CMSs do (an excerpt in ``description``, the article in ``content:encoded`` with
inline links, a figure, a subheading, share links and a tracking pixel, and
``media:content``), as densely as the shared corpus's news feeds; ``--style light`` is
the earlier, lighter markup (one ``description`` of paragraphs, an image, now and then a
script). Every response waits ``--latency-ms`` first; responses carry an ETag and a
Last-Modified and conditional requests get 304. ``GET /stats`` reports what was served and
the server's CPU time. Bodies are made from a seed (``--pregenerate N`` makes the first N
before serving), so both tools pay the same server cost.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

ENTRIES = 50
WIRE_STORIES = 500
POOL = 4000  # paragraphs per language
BUDGET = 2500  # bytes of paragraphs per item (light style)
NEWS_BUDGET = 600  # the news style spends the rest on its figure, excerpt and links
STYLES = ("news", "light")
LAST_MODIFIED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_NEWEST = LAST_MODIFIED - timedelta(minutes=5)
_FEED_PATH = re.compile(r"^/feeds/(\d+)\.xml$")
_ENTRIES_QUERY = re.compile(r"entries=(\d+)")
_TAG = re.compile(r"<[^>]*>")


def _vocabulary(words: str) -> tuple[str, ...]:
    return tuple(words.split())


_EN = _vocabulary(
    "the company said quarterly revenue grew while margins stayed under pressure from rising "
    "costs in its cloud and logistics units analysts expect demand for data centres to keep "
    "growing as regulators review platform rules new payment services rolled out across "
    "southeast asia investors watched shares fall after the earnings call executives plan to "
    "expand overseas markets and invest in chips software developers retail merchants "
    "consumers delivery networks electric vehicles batteries supply chain factories exports "
    "tariffs interest rates inflation central bank policy startup funding venture capital "
    "smartphone sales gaming licences streaming video advertising budget"
)
_FR = _vocabulary(
    "la société a annoncé une hausse du chiffre d'affaires malgré des marges sous pression "
    "les analystes prévoient une demande soutenue pour les centres de données pendant que "
    "les régulateurs examinent les règles des plateformes numériques les investisseurs ont "
    "vu l'action reculer après la publication des résultats trimestriels les dirigeants "
    "veulent développer les marchés étrangers et investir dans les puces électroniques "
    "commerçants consommateurs livraison véhicules électriques batteries usines exportations "
    "droits de douane taux d'intérêt banque centrale jeunes pousses financement publicité"
)
_ZH = _vocabulary(
    "公司 表示 季度 营收 增长 利润率 压力 成本 上升 云计算 物流 业务 分析师 预计 数据中心 需求 "
    "持续 监管 部门 审查 平台 规则 新的 支付 服务 东南亚 推出 投资者 股价 下跌 财报 电话会 高管 "
    "计划 拓展 海外 市场 投资 芯片 软件 开发者 零售 商家 消费者 配送 网络 电动车 电池 供应链 "
    "工厂 出口 关税 利率 通胀 央行 政策 初创 融资 风险投资 智能手机 销量 游戏 版号 视频 广告 预算"
)
_MENTIONS = {
    "en": (
        "Alibaba Cloud cut prices on its Qwen models for enterprise customers.",
        "Tencent said WeChat Pay volumes rose sharply during the holiday season.",
        "Shoppers on Taobao and Tmall spent more on electronics this quarter.",
        "A new staging of Alibaba and the Forty Thieves opened in London.",
    ),
    "fr": (
        "Alibaba a présenté une nouvelle version de son modèle Qwen aux entreprises.",
        "Tencent a fait état d'une forte hausse des paiements par WeChat Pay.",
        "Les ventes sur AliExpress ont progressé en Europe ce trimestre.",
    ),
    "zh": (
        "阿里巴巴集团 宣布 阿里云 大幅 下调 通义千问 模型 价格。",
        "腾讯 表示 微信 支付 交易量 在 假期 明显 增长。",
        "淘宝 和 天猫 的 消费者 本季度 在 电子产品 上 花费 更多。",
    ),
}
_LANGS = ("en", "en", "en", "fr", "zh")  # three feeds in five are English
_SYLLABLES = {
    "en": ("ka", "ro", "ten", "vi", "sor", "mal", "de", "qu", "bri", "ton", "ex", "pla", "gen"),
    "fr": ("é", "ri", "lon", "cha", "mé", "ta", "vè", "que", "sou", "pré", "nat", "oir", "au"),
}
_HANZI = (
    "国家发展经济市场企业技术产品服务平台数据网络用户投资金融银行资本股票基金价格消费贸易出口"
    "进口工业制造能源汽车电池芯片软件硬件系统研究创新政策监管部门地区城市公司集团管理业务收入"
)
VOCABULARY = 3000  # generated content words per language, beside the common ones


def _content_words(lang: str) -> tuple[str, ...]:
    """Deterministic pseudo-words, so text has a news-sized vocabulary, not 80 words."""
    rng = random.Random(f"words-{lang}")
    out: set[str] = set()
    while len(out) < VOCABULARY:
        if lang == "zh":
            out.add("".join(rng.choices(_HANZI, k=2)))
        else:
            out.add("".join(rng.choices(_SYLLABLES[lang], k=rng.randint(2, 4))))
    return tuple(sorted(out))


_COMMON = {"en": _EN, "fr": _FR, "zh": _ZH}
_WORDS = {lang: common + _content_words(lang) for lang, common in _COMMON.items()}


def feed_url(index: int, port: int, hosts: int, entries: int = ENTRIES) -> str:
    """Where feed *index* is served: spread round-robin over 127.0.0.2 onwards."""
    query = "" if entries == ENTRIES else f"?entries={entries}"
    return f"http://127.0.0.{2 + index % hosts}:{port}/feeds/{index}.xml{query}"


def etag(index: int, entries: int) -> str:
    return f'"bench-{index}-{entries}-v1"'


def _words(rng: random.Random, lang: str) -> list[str]:
    """The words of one sentence: 9 to 18, half common words, half content words."""
    k = rng.randint(9, 18)
    words = rng.choices(_COMMON[lang], k=k // 2) + rng.choices(_WORDS[lang], k=k - k // 2)
    rng.shuffle(words)
    return words


def _punctuate(parts: list[str], lang: str) -> str:
    """*parts* as a sentence: capitalised unless it opens with a tag, with a full stop."""
    if lang == "zh":
        return "".join(parts) + "。"
    text = " ".join(parts)
    return (text if text[0] == "<" else text[0].upper() + text[1:]) + "."


def _sentence(rng: random.Random, lang: str) -> str:
    return _punctuate(_words(rng, lang), lang)


def _paragraph(rng: random.Random, lang: str) -> str:
    sentences = [_sentence(rng, lang) for _ in range(rng.randint(3, 5))]
    word = rng.choice(_WORDS[lang])
    sentences[1] = f'<a href="/topics/{rng.randrange(10_000)}">{word}</a> ' + sentences[1]
    if rng.random() < 0.3:
        sentences[0] = f"<strong>{sentences[0]}</strong>"
    return "<p>" + " ".join(sentences) + "</p>"


def _inline(rng: random.Random, lang: str, words: list[str]) -> str:
    """*words* marked up the way news CMSs mark up body text: a link or emphasis."""
    text = ("" if lang == "zh" else " ").join(words)
    kind = rng.random()
    if kind < 0.55:
        slug = rng.randrange(100_000)
        return (
            f'<a href="https://news.example.invalid/{lang}/topics/{slug}/" '
            f'rel="noopener" target="_blank">{text}</a>'
        )
    if kind < 0.8:
        return f"<em>{text}</em>"
    return f"<strong>{text}</strong>"


def _news_sentence(rng: random.Random, lang: str) -> str:
    """A sentence with two marked-up phrases of one to three words, one in each half."""
    words = _words(rng, lang)
    half = len(words) // 2
    spans = [
        (i, i + rng.randint(1, 3))
        for i in (rng.randrange(half - 2), half + rng.randrange(half - 2))
    ]
    parts: list[str] = []
    at = 0
    for start, end in spans:
        parts += words[at:start]
        parts.append(_inline(rng, lang, words[start:end]))
        at = end
    parts += words[at:]
    return _punctuate(parts, lang)


def _news_paragraph(rng: random.Random, lang: str) -> str:
    """A body paragraph with inline links and emphasis (about one tag per 80 bytes of the
    item, as in the real news feeds of the shared corpus; the light style has one per 140)."""
    sentences = [_news_sentence(rng, lang) for _ in range(rng.randint(2, 4))]
    return f'<p class="article-body__paragraph">{" ".join(sentences)}</p>'


@functools.cache
def _pool(lang: str, style: str = "light") -> tuple[tuple[str, int], ...]:
    """Paragraphs (with their UTF-8 size) that items draw from, so serving stays cheap."""
    rng = random.Random(f"pool-{lang}" if style == "light" else f"pool-{lang}-{style}")
    make = _paragraph if style == "light" else _news_paragraph
    out = []
    for _ in range(POOL):
        para = make(rng, lang)
        out.append((para, len(para.encode("utf-8"))))
    return tuple(out)


def _paragraphs(rng: random.Random, lang: str, budget: int, style: str = "light") -> list[str]:
    """Paragraphs drawn from the pool until about *budget* bytes of HTML."""
    pool = _pool(lang, style)
    out: list[str] = []
    size = 0
    while size < budget:
        para, n = pool[rng.randrange(len(pool))]
        out.append(para)
        size += n
    return out


def _item(feed: int, n: int, lang: str, style: str = "light") -> str:
    rng = random.Random(feed * 100_003 + n)
    published = _NEWEST - timedelta(hours=n, minutes=feed % 60)
    budget = BUDGET if style == "light" else NEWS_BUDGET
    if rng.random() < 0.1:  # a wire story several feeds carry
        story = rng.randrange(WIRE_STORIES)
        srng = random.Random(1_000_000_007 + story)
        slang = _LANGS[story % len(_LANGS)]
        title = f"Wire {story}: " + _sentence(srng, slang)[:-1]
        paras = _paragraphs(srng, slang, budget, style)
        if story % 5 == 0:
            paras.insert(1, f"<p>{srng.choice(_MENTIONS[slang])}</p>")
        link = f"https://wire.example.invalid/story/{story}?utm_source=feed{feed}&utm_medium=rss"
        guid = f"feed{feed}-wire{story}"
    else:
        title = f"{_sentence(rng, lang)[:-1]} ({feed}-{n})"
        paras = _paragraphs(rng, lang, budget, style)
        if rng.random() < 0.15:  # relevance has work to do
            paras.insert(rng.randrange(len(paras)), f"<p>{rng.choice(_MENTIONS[lang])}</p>")
        link = f"https://news{feed % 97}.example.invalid/{lang}/{feed}/{n}.html"
        guid = link if rng.random() < 0.5 else f"urn:bench:{feed}:{n}"
    if style == "news":
        return _news_item(rng, feed, n, lang, title, link, guid, paras, published)
    img = f'<img src="/img/{feed}/{n}.jpg" alt="figure {n}" width="640" height="360">'
    extra = f"<script>track({feed},{n})</script>" if rng.random() < 0.2 else ""
    body = paras[0] + img + "".join(paras[1:]) + extra
    categories = "".join(f"<category>{escape(w)}</category>" for w in rng.sample(_WORDS[lang], 3))
    permalink = "true" if guid == link else "false"
    return (
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f'<guid isPermaLink="{permalink}">{escape(guid)}</guid>'
        f"<pubDate>{format_datetime(published)}</pubDate>{categories}"
        f"<dc:creator>Desk {rng.randrange(20)}</dc:creator>"
        f"<description><![CDATA[{body}]]></description></item>\n"
    )


def _news_item(
    rng: random.Random,
    feed: int,
    n: int,
    lang: str,
    title: str,
    link: str,
    guid: str,
    paras: list[str],
    published: datetime,
) -> str:
    """An item as a news CMS writes it: an excerpt in ``description``, the article in
    ``content:encoded`` (a figure with a srcset, a subheading, now and then a list or an
    embed, share links and a tracking pixel) and its image in ``media:content``."""
    site = f"https://news{feed % 97}.example.invalid/"
    image = f"https://cdn.example.invalid/{feed}/{n}"
    caption = escape(_sentence(rng, lang))
    plain = _TAG.sub("", paras[0])
    teaser = plain[:60] if lang == "zh" else plain[:160].rsplit(" ", 1)[0]
    excerpt = f'<p>{teaser} [&#8230;]</p><p><a href="{site}">Bench news {feed}</a></p>'

    figure = (
        '<figure class="wp-block-image size-large"><img decoding="async" loading="lazy" '
        f'width="1024" height="576" src="{image}-1024x576.jpg" alt="" '
        f'class="wp-image-{feed * 100 + n}" srcset="{image}-1024x576.jpg 1024w, '
        f'{image}-300x169.jpg 300w, {image}-768x432.jpg 768w" '
        'sizes="(max-width: 1024px) 100vw, 1024px" />'
        f'<figcaption class="wp-element-caption">{caption}</figcaption></figure>'
    )
    blocks = [paras[0], figure, *paras[1:]]
    if len(blocks) > 3:
        heading = escape(_sentence(rng, lang)[:-1])
        blocks.insert(3, f'<h2 class="wp-block-heading">{heading}</h2>')
    if rng.random() < 0.3:
        points = "".join(f"<li>{escape(_sentence(rng, lang))}</li>" for _ in range(3))
        blocks.insert(len(blocks) - 1, f'<ul class="wp-block-list">{points}</ul>')
    if rng.random() < 0.2:
        blocks.append(
            '<blockquote class="embed-post"><p lang="en" dir="ltr">'
            f'<a href="https://social.example.invalid/status/{feed}{n}">{caption}</a>'
            '</p></blockquote><script async src="https://social.example.invalid/widgets.js" '
            'charset="utf-8"></script>'
        )
    share = "".join(
        f'<a href="https://{net}.example.invalid/share?u={escape(link)}" '
        f'title="Share on {net}" rel="nofollow">{net}</a> '
        for net in ("social", "mail")
    )
    blocks.append(f'<p class="share-links">{share}</p>')
    blocks.append(
        f'<img src="https://pixel.example.invalid/{feed}/{n}.gif" height="1" width="1" alt="" />'
    )
    categories = "".join(
        f"<category><![CDATA[{w}]]></category>" for w in rng.sample(_WORDS[lang], 3)
    )
    permalink = "true" if guid == link else "false"
    return (
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<dc:creator><![CDATA[Desk {rng.randrange(20)}]]></dc:creator>"
        f"<pubDate>{format_datetime(published)}</pubDate>{categories}"
        f'<guid isPermaLink="{permalink}">{escape(guid)}</guid>'
        f"<description><![CDATA[{excerpt}]]></description>"
        f"<content:encoded><![CDATA[{''.join(blocks)}]]></content:encoded>"
        f'<media:content url="{image}-1024x576.jpg" medium="image" width="1024" height="576">'
        f'<media:title type="plain">{caption}</media:title></media:content></item>\n'
    )


def make_feed(index: int, entries: int = ENTRIES, style: str = "news") -> bytes:
    """Feed *index* as RSS 2.0 bytes; the same index and style always give the same
    document."""
    lang = _LANGS[index % len(_LANGS)]
    items = "".join(_item(index, n, lang, style) for n in range(entries))
    language = {"en": "en-us", "fr": "fr-fr", "zh": "zh-cn"}[lang]
    namespaces = 'xmlns:dc="http://purl.org/dc/elements/1.1/"'
    if style == "news":
        namespaces += (
            ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
            ' xmlns:media="http://search.yahoo.com/mrss/"'
        )
    doc = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<rss version="2.0" {namespaces}>\n'
        f"<channel><title>Bench news {index}</title>"
        f"<link>https://news{index % 97}.example.invalid/</link>"
        f"<description>Generated feed {index}</description><language>{language}</language>"
        f"<lastBuildDate>{format_datetime(LAST_MODIFIED)}</lastBuildDate>\n"
        f"{items}</channel></rss>\n"
    )
    return doc.encode("utf-8")


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {"200": 0, "304": 0, "404": 0, "bytes": 0}

    def add(self, status: int, size: int) -> None:
        with self.lock:
            self.counts[str(status)] = self.counts.get(str(status), 0) + 1
            self.counts["bytes"] += size

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            out: dict[str, float] = dict(self.counts)
        out["cpu_seconds"] = time.process_time()
        return out


def not_modified(headers: object, tag: str, last_modified: datetime = LAST_MODIFIED) -> bool:
    """Does a conditional request (If-None-Match, else If-Modified-Since) match?"""
    get = headers.get  # type: ignore[attr-defined]
    match = get("If-None-Match")
    if match is not None:
        return tag in [t.strip() for t in match.split(",")] or match.strip() == "*"
    since = get("If-Modified-Since")
    if since:
        try:
            return bool(parsedate_to_datetime(since) >= last_modified)
        except (TypeError, ValueError):
            return False
    return False


def make_handler(
    feeds: int,
    latency: float,
    stats: _Stats,
    ready: dict[int, bytes] | None = None,
    style: str = "news",
) -> type[BaseHTTPRequestHandler]:
    """*ready* holds bodies made in advance (``ENTRIES`` entries, by feed index)."""
    ready = ready or {}
    last_modified = format_datetime(LAST_MODIFIED, usegmt=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 120  # an idle kept-alive connection is dropped after this

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/stats":
                self._send(200, json.dumps(stats.snapshot()).encode(), "application/json")
                return
            m = _FEED_PATH.match(path)
            if m is None or int(m.group(1)) >= feeds:
                self._send(404, b"not found", "text/plain")
                return
            index = int(m.group(1))
            asked = _ENTRIES_QUERY.fullmatch(query)
            entries = min(int(asked.group(1)), 1000) if asked else ENTRIES
            time.sleep(latency)
            headers = {"ETag": etag(index, entries), "Last-Modified": last_modified}
            if not_modified(self.headers, headers["ETag"]):
                self._send(304, b"", None, headers)
                return
            body = ready.get(index) if entries == ENTRIES else None
            if body is None:
                body = make_feed(index, entries, style)
            self._send(200, body, "application/rss+xml; charset=utf-8", headers)

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str | None,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
            if self.path != "/stats":
                stats.add(status, len(body))

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def bind_all(hosts: int, handler: type[BaseHTTPRequestHandler]) -> list[_Server]:
    """One listener per address 127.0.0.2 .. 127.0.0.(hosts+1), all on one free port."""
    if not 1 <= hosts <= 253:
        raise ValueError("--hosts must be between 1 and 253 (127.0.0.2 to 127.0.0.254)")
    for _attempt in range(20):
        first = _Server(("127.0.0.2", 0), handler)
        port = first.server_address[1]
        servers = [first]
        try:
            for h in range(1, hosts):
                servers.append(_Server((f"127.0.0.{2 + h}", port), handler))
        except OSError:
            for s in servers:
                s.server_close()
            continue
        return servers
    raise OSError("could not bind one port on every loopback address")


def _stdin_closed(stop: threading.Event) -> None:
    sys.stdin.buffer.read()  # returns at EOF: the parent is gone or done with us
    stop.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--max-seconds", type=float, default=3 * 3600.0)
    parser.add_argument(
        "--pregenerate", type=int, default=0,
        help="make the first N feeds' bodies before serving (like static files)",
    )  # fmt: skip
    parser.add_argument(
        "--style", choices=STYLES, default="news",
        help="news: markup as dense as the shared corpus's news feeds; light: the earlier, "
        "lighter markup (figures before 2026-12-05)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    for lang in _WORDS:
        _pool(lang, args.style)
    stats = _Stats()
    bodies = {i: make_feed(i, style=args.style) for i in range(min(args.pregenerate, args.feeds))}
    handler = make_handler(args.feeds, args.latency_ms / 1000, stats, bodies, args.style)
    servers = bind_all(args.hosts, handler)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    stop = threading.Event()
    threading.Thread(target=_stdin_closed, args=(stop,), daemon=True).start()
    ready = {"port": servers[0].server_address[1], "hosts": [s.server_address[0] for s in servers]}
    print(json.dumps(ready), flush=True)
    stop.wait(args.max_seconds)  # then exit: the listener threads are daemons


if __name__ == "__main__":
    main()
