"""`layerguard password`: where the page's password comes from, the generated one shown, reset,
or a hash for `web.password_hash` made from a password typed in."""

from __future__ import annotations

import getpass
import sys

from agent.settings import Settings, load_settings
from agent.web.address import page_url
from agent.web.login import PASSWORD_FILE, generated_password, hash_password


def describe(settings: Settings, *, reset: bool = False) -> str:
    """One line for `doctor` and `password`: the page's address and how to log in."""
    web = settings.web
    if not web.enabled:
        return "off (web.enabled = false)"
    where = page_url(settings) or f"the page ({settings.web.listen}: a port chosen at start)"
    if web.auth == "none":
        return (
            f'{where} WITHOUT a login (web.auth = "none"): keep it behind a reverse proxy that asks for one'
        )
    if web.password.get_secret_value():
        return f"{where} password: set by the secret file web__password"
    if web.password_hash:
        return f"{where} password: set as web.password_hash"
    password, _ = generated_password(settings.agent.state_dir, reset=reset)
    return f"{where} password: {password} (generated, in {settings.agent.state_dir / PASSWORD_FILE})"


def run_password(config: str | None, reset: bool, make_hash: bool) -> int:
    if make_hash:
        prompt = "Password for the page: "
        password = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline().strip()
        if len(password) < 8:
            print("layerguard: a password of 8 characters or more, please", file=sys.stderr)
            return 1
        print(f'password_hash = "{hash_password(password)}"  # under [web] in layerguard.toml')
        return 0
    settings = load_settings(config)
    if reset and (settings.web.password.get_secret_value() or settings.web.password_hash):
        print(
            "layerguard: the password is set by the secret file web__password or web.password_hash; "
            "change it there (and restart the agent)",
            file=sys.stderr,
        )
        return 1
    print(describe(settings, reset=reset))
    if reset:
        print("The running agent takes it at the next login; every browser is logged out.")
    return 0
