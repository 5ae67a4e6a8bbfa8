"""A minimal browser for the page tests: one request at a time over http.client, cookies
kept as a browser keeps them, redirects returned rather than followed."""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def field(self, name: str) -> str:
        """The value of a form's hidden field ``name`` on this page."""
        match = re.search(rf'name="{name}" value="([^"]*)"', self.text)
        assert match, f"no field {name} on the page"
        return match[1]

    def cookies(self) -> dict[str, Any]:
        jar: SimpleCookie = SimpleCookie()
        for line in self.headers.get_all("Set-Cookie") or []:
            jar.load(line)
        return {k: v for k, v in jar.items()}


@dataclass
class Browser:
    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            sent = dict(headers or {})
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            answer = Answer(response.status, response.headers, response.read())
        finally:
            conn.close()
        for name, morsel in answer.cookies().items():
            expired = morsel["max-age"] == "0" or "1970" in morsel["expires"]
            if expired:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value
        return answer

    def get(self, path: str, **headers: str) -> Answer:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: dict[str, str], **headers: str) -> Answer:
        body = urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        return self.request("POST", path, body, headers)

    def sign_in(self, token: str, next_page: str = "/") -> Answer:
        form = self.get("/-/signin")
        return self.post(
            "/-/signin", {"csrf": form.field("csrf"), "token": token, "next": next_page}
        )
