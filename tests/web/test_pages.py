"""The web pages over HTTP, served in this process: signing in and out (CSRF, cookies),
every page checking the token's grants as the API does, markup in names, messages and
cells shown as text, the security headers, paging, tables, raw bytes and row diffs."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.web.client import Answer, Browser
from tests.web.conftest import Site
from tests.web.content import (
    CSV_TWO,
    MANY,
    NAME,
    NS,
    PARQUET_ROWS,
    SCRIPT_NAME,
    png,
)

REPO = f"/{NS}/{NAME}"


def signed_in(site: Site, who: str = "writer") -> Browser:
    browser = Browser(site.server.port)
    assert browser.sign_in(site.token(who)).status == 303
    return browser


def page(browser: Browser, path: str, status: int = 200) -> Answer:
    answer = browser.get(path)
    assert answer.status == status, (path, answer.status, answer.text[:500])
    assert answer.headers["Content-Type"].startswith("text/html")
    assert_safe(answer)
    return answer


def assert_safe(answer: Answer) -> None:
    """No markup from the repository reached the page as markup: the only script is ours,
    and the page may run no other (its Content-Security-Policy)."""
    html = answer.text
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/-/static/oxen.js" defer>']
    assert "alert(" not in html.replace("alert(1)", "").replace("alert(&#39;x&#39;)", "")
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


# -- signing in and out -------------------------------------------------------------------


def test_pages_send_a_browser_without_a_session_to_sign_in(site: Site) -> None:
    browser = Browser(site.server.port)
    for path in ("/", f"{REPO}/file/labels.csv?rev=main", f"/{NS}"):
        answer = browser.get(path)
        assert answer.status == 303
        assert answer.headers["Location"] == "/-/signin?next=" + quote(path, safe="")
    form = page(browser, "/-/signin?next=%2Fteam%2Fdata")
    assert form.field("next") == "/team/data" and len(form.field("csrf")) == 64
    nonce = form.cookies()["oxen_csrf"]
    assert nonce["httponly"] and nonce["samesite"] == "Strict" and nonce["path"] == "/"


def test_signing_in_sets_a_cookie_no_script_can_read(site: Site) -> None:
    browser = Browser(site.server.port)
    csrf = browser.get("/-/signin").field("csrf")
    answer = browser.post(
        "/-/signin", {"csrf": csrf, "token": site.token("reader"), "next": "/team/data"}
    )
    assert answer.status == 303 and answer.headers["Location"] == "/team/data"
    cookie = answer.cookies()["oxen_token"]
    assert cookie.value == site.token("reader")
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and int(cookie["max-age"]) > 0
    home = page(browser, "/")
    assert "reader@example.com" in home.text and f'href="{REPO}"' in home.text


def test_a_bad_token_is_refused_on_the_form(site: Site) -> None:
    browser = Browser(site.server.port)
    csrf = browser.get("/-/signin").field("csrf")
    answer = browser.post("/-/signin", {"csrf": csrf, "token": "oxn_nope", "next": "/"})
    assert answer.status == 401 and "not valid on this server" in answer.text
    assert "oxen_token" not in browser.cookies
    csrf = answer.field("csrf")
    answer = browser.post("/-/signin", {"csrf": csrf, "token": site.token("expired")})
    assert answer.status == 401 and "expired" in answer.text


@pytest.mark.parametrize("where", ["//evil.example/x", "https://evil.example/", "/\\evil", ""])
def test_after_signing_in_a_browser_stays_on_this_site(site: Site, where: str) -> None:
    answer = Browser(site.server.port).sign_in(site.token("reader"), where)
    assert answer.status == 303 and answer.headers["Location"] == "/"


def test_forms_need_their_csrf_field_and_this_site(site: Site) -> None:
    browser = Browser(site.server.port)
    form = browser.get("/-/signin")
    token = site.token("writer")
    for sent in ({"token": token}, {"token": token, "csrf": "0" * 64}):
        answer = browser.post("/-/signin", sent)
        assert answer.status == 403 and "oxen_token" not in browser.cookies
    foreign = browser.post(
        "/-/signin", {"csrf": form.field("csrf"), "token": token}, Origin="http://evil.example"
    )
    assert foreign.status == 403 and "another site" in foreign.text
    stranger = Browser(site.server.port)  # a form taken from one browser, sent by another
    stranger.get("/-/signin")
    assert stranger.post("/-/signin", {"csrf": form.field("csrf"), "token": token}).status == 403


def test_signing_out_needs_the_sessions_own_csrf_field(site: Site) -> None:
    browser = signed_in(site)
    home = page(browser, "/")
    field = home.field("csrf")
    other = signed_in(site, "reader")  # another session's field does not sign this one out
    assert browser.post("/-/signout", {"csrf": other.get("/").field("csrf")}).status == 403
    assert browser.post("/-/signout", {}).status == 403
    answer = browser.post("/-/signout", {"csrf": field})
    assert answer.status == 303 and answer.headers["Location"] == "/-/signin"
    assert "oxen_token" not in browser.cookies
    assert browser.get("/").status == 303


def test_a_form_too_large_is_refused(site: Site) -> None:
    browser = Browser(site.server.port)
    csrf = browser.get("/-/signin").field("csrf")
    answer = browser.post("/-/signin", {"csrf": csrf, "token": "x" * 20_000})
    assert answer.status == 413


# -- grants ---------------------------------------------------------------------------------


def test_every_page_checks_the_namespace_as_the_api_does(site: Site) -> None:
    outsider = signed_in(site, "outsider")  # a reader of "other" only
    home = page(outsider, "/")
    assert "/other/thing" in home.text and REPO not in home.text
    paths = [
        REPO,
        f"{REPO}/tree/many",
        f"{REPO}/file/labels.csv",
        f"{REPO}/commits",
        f"{REPO}/commit/{site.commits[1]}",
        f"{REPO}/compare?base=main&head=main",
        f"{REPO}/rowdiff/labels.csv?base=main",
        f"/{NS}",
    ]
    for path in paths:
        answer = page(outsider, path, 403)
        assert "may not read namespace team" in answer.text
    assert outsider.get(f"{REPO}/raw/labels.csv").status == 403
    counts = outsider.get(f"{REPO}/rowcounts/labels.csv?base=main")
    assert counts.status == 403 and counts.json()["status"] == 403
    reader = signed_in(site, "reader")
    assert reader.get(REPO).status == 200
    assert reader.get("/other/thing").status == 403


def test_a_token_that_expired_since_sends_the_browser_to_sign_in(site: Site) -> None:
    browser = Browser(site.server.port, {"oxen_token": site.token("expired")})
    answer = browser.get(REPO)
    assert answer.status == 303 and "why=expired" in answer.headers["Location"]
    assert "has expired" in browser.get(answer.headers["Location"]).text
    gone = Browser(site.server.port, {"oxen_token": "oxn_" + "x" * 43})
    assert "why=invalid" in gone.get(REPO).headers["Location"]
    counts = gone.get(f"{REPO}/rowcounts/labels.csv?base=main")
    assert counts.status == 401 and counts.headers["Content-Type"].startswith("application/json")


def test_the_api_keeps_its_own_answers(site: Site) -> None:
    browser = signed_in(site)
    assert browser.get("/healthz").json() == {"ok": True}
    assert browser.get("/api/health").json() == {"ok": True}
    assert browser.get("/metrics").status == 200
    api = browser.get(f"/api/repos/{NS}/{NAME}/refs")  # the cookie is no bearer token
    assert api.status == 401 and api.json()["status"] == 401


# -- what the pages show ----------------------------------------------------------------------


def test_markup_in_names_messages_and_cells_is_text(site: Site) -> None:
    browser = signed_in(site)
    escaped = "&lt;script&gt;alert("
    top = page(browser, REPO)
    assert escaped + "1).txt" in top.text  # the file's name
    assert "first &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in top.text  # a message
    first = page(browser, f"{REPO}/commit/{site.commits[0]}")
    assert '<h1 id="message-title">first &lt;script&gt;' in first.text
    named = page(browser, f"{REPO}/file/{quote(SCRIPT_NAME)}")
    assert "the name of this file is &lt;script&gt;" in named.text
    assert f'href="{REPO}/raw/%3Cscript%3Ealert%281%29.txt?rev=' in named.text
    table = page(browser, f"{REPO}/file/labels.csv?rev=main")
    assert f"<td>{escaped}&#39;x&#39;)&lt;/script&gt;</td>" in table.text
    diff = page(browser, f"{REPO}/rowdiff/labels.csv?base={site.commits[0]}&head=main&keys=id")
    assert "1 added" in diff.text and "1 removed" in diff.text and "1 modified" in diff.text
    page(browser, f"{REPO}/commits")
    page(browser, f"{REPO}/compare?base={site.commits[0]}&head=main")


def test_a_repository_page(site: Site) -> None:
    text = page(signed_in(site), REPO).text
    for shown in ("relabel", "labels.csv", "many/", "250 files", "3 rows", "22.0 KiB"):
        assert shown in text, shown
    assert f'href="{REPO}/commit/{site.commits[1]}"' in text  # the latest commit
    assert '<option value="main" selected>main</option>' in text


def test_a_folder_of_many_files_is_paged(site: Site) -> None:
    browser = signed_in(site)
    first = page(browser, f"{REPO}/tree/many?rev=main").text
    assert first.count('class="file"') == 100 and "f0099.txt" in first and "f0100.txt" not in first
    assert f"Entries 1&ndash;100 of {MANY}" in first
    assert f'href="{REPO}/tree/many?rev=main&amp;offset=100" rel="next"' in first
    last = page(browser, f"{REPO}/tree/many?rev=main&offset=200").text
    assert last.count('class="file"') == 50 and 'rel="next"' not in last
    assert f'href="{REPO}/tree/many?rev=main&amp;offset=100" rel="prev"' in last
    at_commit = page(browser, f"{REPO}/tree/many?rev={site.commits[0]}&limit=10").text
    assert at_commit.count('class="file"') == 10
    page(browser, f"{REPO}/tree/many?offset=-1", 400)
    page(browser, f"{REPO}/tree/nope", 404)
    page(browser, f"{REPO}/tree/many?rev=nope", 404)


def test_a_parquet_file_shows_its_schema_and_pages_of_rows(site: Site) -> None:
    browser = signed_in(site)
    text = page(browser, f"{REPO}/file/data/t.parquet?rev=main").text
    assert f"parquet &middot; {PARQUET_ROWS:,} rows &middot; 3 columns" in text
    assert "<td>label-0000</td>" in text and "<td>label-0099</td>" in text
    assert "label-0100" not in text and f"Rows 1&ndash;100 of {PARQUET_ROWS:,}" in text
    later = page(browser, f"{REPO}/file/data/t.parquet?rev=main&offset=900").text
    assert "<td>label-0999</td>" in later and 'rel="next"' not in later
    kept = page(browser, f"{REPO}/file/data/t.parquet?rev=main&filter=id%20%3E%3D%20995").text
    assert kept.count('<tr><td class="num">') == 5 and "<td>label-0995</td>" in kept
    bad = page(browser, f"{REPO}/file/data/t.parquet?rev=main&filter=nope%20%3E%201").text
    assert 'class="error"' in bad and "nope" in bad  # the schema stays on the page


def test_an_image_a_text_and_a_binary(site: Site) -> None:
    browser = signed_in(site)
    image = page(browser, f"{REPO}/file/images/cat.png?rev=main").text
    assert re.search(
        rf'<img id="preview" src="{REPO}/raw/images/cat.png\?rev=[0-9a-f]{{64}}"', image
    )
    notes = page(browser, f"{REPO}/file/notes.md").text
    assert "plain text, &lt;b&gt;not bold&lt;/b&gt;" in notes


def test_raw_bytes_ranges_and_downloads(site: Site) -> None:
    browser = signed_in(site)
    whole = browser.get(f"{REPO}/raw/images/cat.png?rev=main")
    assert whole.status == 200 and whole.body == png()
    assert whole.headers["Content-Type"] == "image/png"
    assert whole.headers["Content-Security-Policy"].startswith("sandbox")
    assert whole.headers["Content-Disposition"].startswith("inline;")
    part = browser.request("GET", f"{REPO}/raw/labels.csv?rev=main", headers={"Range": "bytes=3-8"})
    assert part.status == 206 and part.body == CSV_TWO.encode()[3:9]
    saved = browser.get(f"{REPO}/raw/{quote(SCRIPT_NAME)}?download=1")
    assert saved.status == 200 and saved.body.startswith(b"the name of this file is")
    disposition = saved.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="<script>alert(1).txt"')
    assert "filename*=UTF-8''%3Cscript%3Ealert%281%29.txt" in disposition
    head = browser.request("HEAD", f"{REPO}/raw/labels.csv")
    assert head.status == 200 and head.headers["Content-Length"] == str(len(CSV_TWO))


def test_a_commit_page_and_its_row_counts(site: Site) -> None:
    browser = signed_in(site)
    first, second = site.commits
    text = page(browser, f"{REPO}/commit/{second}").text
    assert "relabel" in text and f'href="{REPO}/commit/{first}"' in text
    assert "1 path changed" in text and "labels.csv" in text
    src = f"{REPO}/rowcounts/labels.csv?base={first}&amp;head={second}&amp;keys=id"
    assert f'data-src="{src}"' in text
    counts = browser.get(src.replace("&amp;", "&"))
    assert counts.json() == {
        "added": 1,
        "removed": 1,
        "modified": 1,
        "keys": ["id"],
        "columns_added": [],
        "columns_removed": [],
    }
    bad = browser.get(f"{REPO}/rowcounts/labels.csv?base={first}&keys=nope")
    assert bad.status == 400 and "nope" in bad.json()["error"]
    initial = page(browser, f"{REPO}/commit/{first}?offset=200").text
    assert "Paths 201&ndash;255 of 255" in initial and "none: the first commit" in initial
    page(browser, f"{REPO}/commit/{'0' * 64}", 404)


def test_compare_and_row_diff_pages(site: Site) -> None:
    browser = signed_in(site)
    first, _ = site.commits
    form = page(browser, f"{REPO}/compare").text
    assert '<datalist id="branches"><option value="main">' in form
    text = page(browser, f"{REPO}/compare?base={first}&head=main").text
    assert "1 commit in main not in" in text and "relabel" in text and "labels.csv" in text
    missing = page(browser, f"{REPO}/rowdiff/labels.csv?base={first}&head=main&keys=nope").text
    assert 'class="error"' in missing and "nope" in missing
    page(browser, f"{REPO}/compare?base=nope&head=main", 404)


def test_static_assets_ship_with_the_server(site: Site) -> None:
    browser = Browser(site.server.port)
    for name, kind in (("oxen.css", "text/css"), ("oxen.js", "javascript")):
        answer = browser.get(f"/-/static/{name}")
        assert answer.status == 200 and kind in answer.headers["Content-Type"]
    assert browser.get("/-/static/../routes.py").status in (403, 404)


def test_an_empty_repository_says_how_to_push_to_it(site: Site) -> None:
    text = page(signed_in(site), "/other/thing").text
    url = f"http://127.0.0.1:{site.server.port}/other/thing"
    assert f"oxen remote add origin {url}" in text and "This repository is empty" in text
