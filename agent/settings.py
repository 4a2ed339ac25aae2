"""Configuration: a TOML file, overridden by `LAYERGUARD_<SECTION>__<KEY>` variables and secret files.

Precedence, highest first: environment, secret files, the TOML file, the defaults below.
The defaults are documented key by key in `config/layerguard.toml`; keep the two in step.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path("/etc/layerguard/layerguard.toml")
ENV_PREFIX = "LAYERGUARD_"
# Where secrets may live as one file per setting: systemd credentials, Docker/Compose secrets, local.
SECRET_DIRS_ENV = "LAYERGUARD_SECRETS_DIR"
DEFAULT_SECRET_DIRS = ("/etc/layerguard/secrets", "/run/secrets")
DEFAULT_API_URL = "https://gadget-pv1-oeapi.octoeverywhere.com"
SECRET_KEYS = frozenset({"api_key", "password"})


class ConfigError(Exception):
    """A configuration problem, phrased for the user: it names the setting."""


def default_printer_id() -> str:
    """The hostname, reduced to what is safe in an MQTT topic and a Home Assistant id."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().lower()).strip("-")
    return slug or "printer"


class _Section(BaseModel):
    # A misspelt key is a mistake the user wants to hear about, not a silently ignored line.
    model_config = ConfigDict(extra="forbid", validate_default=True)


class AgentSection(_Section):
    printer_id: str = Field(default_factory=default_printer_id, pattern=r"^[A-Za-z0-9_-]+$")
    state_dir: Path = Path("/var/lib/layerguard")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class PrinterSection(_Section):
    port: str = ""
    baudrate: int = Field(115200, gt=0)
    dialect: Literal["auto", "marlin", "prusa", "klipper"] = "auto"
    # Marlin's M25 leaves a hot nozzle on the part: switch it off this long into LayerGuard's pause.
    cool_down_after_s: float = Field(300.0, ge=0, le=86400)
    cool_down_bed: bool = False  # the bed too (a cold bed may let the part come loose)
    # How long the printer has to confirm a pause or resume; it is sent once more, then pause_failed.
    pause_confirm_s: float = Field(15.0, gt=0, le=300)
    # A printer that sends nothing is probed; with no answer it is reported silent within this.
    silence_s: float = Field(15.0, ge=3, le=600)


class CameraSection(_Section):
    source: str = "picamera2"
    width: int = Field(1280, ge=64, le=4608)
    height: int = Field(720, ge=64, le=3496)
    rotation: Literal[0, 90, 180, 270] = 0
    hflip: bool = False
    vflip: bool = False
    jpeg_quality: int = Field(85, ge=1, le=100)

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value == "picamera2" or value.startswith(("http://", "https://")):
            return value
        if value.startswith("dir:") and len(value) > 4:
            return value
        raise ValueError("must be 'picamera2', an http(s):// snapshot URL, or dir:/path/to/jpegs")


class DetectionSection(_Section):
    api_key: SecretStr = SecretStr("")
    api_url: str = DEFAULT_API_URL
    warning_confidence: int = Field(3, ge=1, le=5)
    pause_confidence: int = Field(3, ge=1, le=5)
    min_interval_s: float = Field(0.0, ge=0, le=3600)
    action: Literal["pause", "warn"] = "pause"
    # After a resume the user has looked at the print; do not pause it again at once.
    resume_grace_s: float = Field(120.0, ge=0, le=86400)
    # Process calls allowed per calendar month (UTC); 0 = no cap.
    monthly_budget: int = Field(0, ge=0)
    # Spread the budget's remaining calls over the month, assuming this many printing hours a day;
    # 0 = inspect at the service's pace until the budget is used up.
    budget_spread_hours_per_day: float = Field(0.0, ge=0, le=24)

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("budget_spread_hours_per_day")
    @classmethod
    def _needs_a_budget(cls, value: float, info: ValidationInfo) -> float:
        if value and not info.data.get("monthly_budget"):
            raise ValueError("spreads detection.monthly_budget, which is 0 (no cap): set a budget too")
        return value


class MqttSection(_Section):
    host: str = ""
    port: int = Field(1883, ge=1, le=65535)
    username: str = ""
    password: SecretStr = SecretStr("")
    tls: bool = False
    ca_file: Path | None = None
    topic_prefix: str = Field("layerguard", pattern=r"^[^#+]+$")
    discovery: bool = True
    discovery_prefix: str = Field("homeassistant", pattern=r"^[^#+]+$")

    @field_validator("ca_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def enabled(self) -> bool:
        return bool(self.host)


class SecretFilesSource(PydanticBaseSettingsSource):
    """One file per secret, named `<section>__<key>` (e.g. `detection__api_key`), as systemd
    credentials and Docker secrets provide them. Only settings typed `SecretStr` are read."""

    def __init__(self, settings_cls: type[BaseSettings], dirs: list[Path]) -> None:
        super().__init__(settings_cls)
        self.dirs = [d for d in dirs if d.is_dir()]

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, dict[str, str]] = {}
        for section_name, section_field in self.settings_cls.model_fields.items():
            section_model = section_field.annotation
            if not (isinstance(section_model, type) and issubclass(section_model, BaseModel)):
                continue
            for key, key_field in section_model.model_fields.items():
                if key_field.annotation is not SecretStr:
                    continue
                for directory in self.dirs:
                    path = directory / f"{section_name}__{key}"
                    if path.is_file():
                        found.setdefault(section_name, {})[key] = path.read_text().strip()
        return found


def secret_dirs() -> list[Path]:
    configured = os.environ.get(SECRET_DIRS_ENV)
    if configured:
        return [Path(p) for p in configured.split(os.pathsep) if p]
    dirs = [Path(p) for p in DEFAULT_SECRET_DIRS]
    if credentials := os.environ.get("CREDENTIALS_DIRECTORY"):
        dirs.insert(0, Path(credentials))
    return dirs


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    agent: AgentSection = Field(default_factory=AgentSection)
    printer: PrinterSection = Field(default_factory=PrinterSection)
    camera: CameraSection = Field(default_factory=CameraSection)
    detection: DetectionSection = Field(default_factory=DetectionSection)
    mqtt: MqttSection = Field(default_factory=MqttSection)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file's content arrives as init kwargs, so it ranks below env and secrets.
        return env_settings, SecretFilesSource(settings_cls, secret_dirs()), init_settings


def config_path(explicit: str | Path | None) -> tuple[Path, bool]:
    """The file to read and whether the user named it (then it must exist)."""
    if explicit:
        return Path(explicit), True
    if env := os.environ.get("LAYERGUARD_CONFIG"):
        return Path(env), True
    return DEFAULT_CONFIG_PATH, False


def load_settings(explicit: str | Path | None = None) -> Settings:
    """Read and validate the configuration; every problem becomes one ConfigError line per setting."""
    path, required = config_path(explicit)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    elif required:
        raise ConfigError(f"{path}: config file not found")
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        name = ".".join(loc) or "configuration"
        env = ENV_PREFIX + "__".join(loc).upper()
        got = f" (got {err['input']!r})" if _showable(loc, err.get("input")) else ""
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}{got} [file key {name}, or {env}]")
    return "\n".join(lines)


def _showable(loc: list[str], value: Any) -> bool:
    """Echo short scalar inputs back to the user, but never a secret's value."""
    if loc and loc[-1] in SECRET_KEYS:
        return False
    return isinstance(value, str | int | float | bool) and len(str(value)) < 80


def require_for_run(settings: Settings) -> None:
    """What `layerguard run` cannot start without, beyond what validation already checks."""
    if not settings.printer.port:
        raise ConfigError(
            "printer.port: required to run; set it to the printer's serial device, "
            "e.g. /dev/serial/by-id/usb-... [file key printer.port, or LAYERGUARD_PRINTER__PORT]"
        )
    if settings.mqtt.ca_file is not None and not settings.mqtt.ca_file.is_file():
        raise ConfigError(f"mqtt.ca_file: {settings.mqtt.ca_file} does not exist")
