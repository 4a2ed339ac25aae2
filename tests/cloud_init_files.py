"""Our cloud-init user-data as a user changes it: the shipped one-printer file, and the same file
with its commented two-printer example put in place of the one-printer parts, as the comment
says. tests/test_deploy.py checks both against cloud-init's schema; tests/test_boot.py boots them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CLOUD_INIT = Path(__file__).resolve().parent.parent / "config" / "cloud-init"
ONE_PRINTER_CONFIG = "/etc/layerguard/layerguard.toml"


def user_data() -> dict[str, Any]:
    text = (CLOUD_INIT / "user-data").read_text()
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def two_printer_example() -> dict[str, Any]:
    """The commented example at the end of user-data: its write_files and runcmd."""
    block = (CLOUD_INIT / "user-data").read_text().split("\n# write_files:\n", 1)[1]
    return yaml.safe_load(
        "write_files:\n" + "\n".join(line.removeprefix("# ") for line in block.splitlines())
    )


def two_printer_user_data() -> dict[str, Any]:
    """user-data for two printers: the one-printer config replaced by the example's configs, the
    runcmd by the example's; the login, the shared secrets and everything else kept."""
    merged, example = user_data(), two_printer_example()
    merged["write_files"] = [f for f in merged["write_files"] if f["path"] != ONE_PRINTER_CONFIG]
    merged["write_files"] += example["write_files"]
    merged["runcmd"] = example["runcmd"]
    return merged
