"""A scripted shopper: an HTTP client with its own cookie jar, speaking the shop's forms."""

from __future__ import annotations

import requests

TIMEOUT = 15


class Shopper:
    """One visitor: one cookie jar, forms posted with their CSRF token."""

    def __init__(self, base_url: str, *, user_agent: str = "shop-harness/1.0") -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["User-Agent"] = user_agent

    @property
    def session_key(self) -> str | None:
        return self.http.cookies.get("sessionid")

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.base_url + path, timeout=TIMEOUT, **kwargs)

    def post(self, path: str, data: dict | None = None, **kwargs) -> requests.Response:
        if "csrftoken" not in self.http.cookies:
            self.get("/accounts/login/")  # any form page sets the CSRF cookie
        form = {**(data or {}), "csrfmiddlewaretoken": self.http.cookies["csrftoken"]}
        kwargs.setdefault("allow_redirects", False)
        return self.http.post(self.base_url + path, data=form, timeout=TIMEOUT, **kwargs)

    # --- What a shopper does -------------------------------------------------------------
    def sign_up(self, username: str, password: str) -> requests.Response:
        return self.post(
            "/accounts/signup/",
            {"username": username, "email": f"{username}@example.com", "password1": password, "password2": password},
        )

    def sign_in(self, username: str, password: str) -> requests.Response:
        return self.post("/accounts/login/", {"username": username, "password": password})

    def sign_out(self) -> requests.Response:
        return self.post("/accounts/logout/")

    def me(self) -> dict:
        return self.get("/accounts/me.json").json()

    def add(self, product_id: int, quantity: int = 1) -> requests.Response:
        return self.post(f"/cart/add/{product_id}/", {"quantity": str(quantity)})

    def basket(self) -> dict[str, int]:
        return self.get("/cart/summary.json").json()["lines"]
