"""The capture-quality gate: is this 200 response the page's content at all? (pure)"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from monitor.domain import Content, Quality

# "404" alone is a number like any other ("вул. Садова, 404"): it says "not found" only as an error code
SOFT_404 = re.compile(r"(?:error|помилка|ошибка|код|code)\s*:?\s*404\b|\b404\s*[-–—:.]?\s*(?:error|not found|"
                      r"помилка|ошибка|сторінк|страниц|page)|^\W*404\W*$|not found|page (?:does not|doesn.t) exist|"
                      r"сторінк[уаи]\s+не\s+знайдено|"
                      r"сторінк[уаи]\s+не\s+знайден[ао]|сторінк[аи]\s+не\s+існує|не\s+знайдено|"
                      r"страниц[аы]\s+не\s+найдена|страница\s+не\s+существует|ничего не найдено", re.I)
CHALLENGE = re.compile(r"just a moment\.\.\.|checking your browser|attention required!? \| cloudflare|"
                       r"ddos protection by|enable javascript and cookies to continue|verify you are (?:a )?human|"
                       r"підтвердіть,? що ви не робот|проверка браузера|are you a robot|captcha|"
                       r"request unsuccessful\. incapsula|access denied.{0,40}(?:cloudflare|akamai|waf|incapsula)|"
                       r"the requested url was rejected", re.I)
MAINTENANCE = re.compile(r"технічн(?:і|их)\s+робіт|технические\s+работы|under maintenance|maintenance mode|"
                         r"сайт тимчасово недоступний|сайт временно недоступен|temporarily unavailable|"
                         r"ведуться\s+(?:технічні\s+)?роботи|coming soon", re.I)
SERVER_ERROR = re.compile(r"internal server error|fatal error:|parse error:|warning: mysql|database error|"
                          r"помилка бази даних|ошибка базы данных|service unavailable|bad gateway|"
                          r"error establishing a database connection|stack trace:|traceback \(most recent", re.I)
HOME_PATHS = frozenset({"", "/", "/uk", "/uk/", "/ua", "/ua/", "/en", "/en/", "/ru", "/ru/", "/index.php",
                        "/index.html"})
SHORT_PAGE = 1500  # characters: error pages are short; a long page that mentions "404" is content


def assess(content: Content, *, url: str, final_url: str, body: bytes, previous_size: int | None = None,
           error_headers: bool = False) -> tuple[Quality, str]:
    """Why this capture is not the page's content, or (OK, '')."""
    if content.quality is not Quality.OK:
        return content.quality, content.quality_reason
    if error_headers:
        return Quality.CHALLENGE, "the response carries a bot-protection marker"
    text = " ".join(b.text for b in content.blocks)
    size = len(text)
    headline = " ".join([content.title, *(b.text for b in content.blocks[:40] if len(b.text) < 200)])
    if CHALLENGE.search(content.title) or (size < 3000 and CHALLENGE.search(text)):
        return Quality.CHALLENGE, "a bot-protection or challenge page"
    if size < SHORT_PAGE * 2 and (SOFT_404.search(content.title.strip())
                                  or (size < SHORT_PAGE and SOFT_404.search(headline))):
        return Quality.SOFT_404, "an error page served with 200 (not found)"
    if size < SHORT_PAGE and MAINTENANCE.search(headline):
        return Quality.MAINTENANCE, "a maintenance page"
    if size < SHORT_PAGE and SERVER_ERROR.search(headline):
        return Quality.SERVER_ERROR, "an error page served with 200"
    visible = max(size, len(content.visible_text))
    if visible < 20 and not content.links:
        return Quality.EMPTY, f"no visible text ({visible} characters)"
    requested = urlsplit(url)
    final = urlsplit(final_url)
    if (final_url != url and requested.path not in HOME_PATHS and final.path in HOME_PATHS
            and (final.hostname or "") == (requested.hostname or "")):
        return Quality.HOME_REDIRECT, f"redirected to the home page ({final_url[:200]})"
    # Many real pages omit </html>; a body cut short is one that lost its end *and* most of its size.
    tail = body[-4096:].lower()
    if (previous_size and len(body) < previous_size * 0.5 and b"<html" in body[:2048].lower()
            and b"</html" not in tail and b"</body" not in tail):
        return Quality.TRUNCATED, (f"the document ends before </body></html> at {len(body)} bytes "
                                   f"(the previous capture had {previous_size})")
    return Quality.OK, ""
