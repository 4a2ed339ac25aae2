"""Configuration: a TOML file, overridden by `LAYERGUARD_<SECTION>__<KEY>` variables and secret files.

Precedence, highest first: environment, secret files, the TOML file, the defaults below.
The defaults are documented key by key in `config/layerguard.toml`; keep the two in step.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from hardware.camera.framing import check_crop, check_rect

ETC_DIR = Path("/etc/layerguard")
DEFAULT_CONFIG_PATH = ETC_DIR / "layerguard.toml"
DEFAULT_STATE_DIR = Path("/var/lib/layerguard")
ENV_PREFIX = "LAYERGUARD_"
# One agent per printer: layerguard@<name>.service sets this to <name>, which then names the
# default config (/etc/layerguard/<name>.toml), state dir, secrets dir and agent.printer_id.
INSTANCE_ENV = "LAYERGUARD_INSTANCE"
INSTANCE_PATTERN = r"^[A-Za-z0-9_-]+$"
# Where secrets may live as one file per setting: systemd credentials, Docker/Compose secrets, local.
SECRET_DIRS_ENV = "LAYERGUARD_SECRETS_DIR"
DEFAULT_SECRET_DIRS = ("/etc/layerguard/secrets", "/run/secrets")
DEFAULT_API_URL = "https://gadget-pv1-oeapi.octoeverywhere.com"
SECRET_KEYS = frozenset({"api_key", "password", "urls"})
# `LAYERGUARD_*` variables that are not settings: anything else without `__` is probably a typo.
OTHER_ENV = frozenset({"LAYERGUARD_CONFIG", SECRET_DIRS_ENV, INSTANCE_ENV})


class ConfigError(Exception):
    """A configuration problem, phrased for the user: it names the setting."""


def instance_name() -> str | None:
    """The printer instance this agent runs as (layerguard@<name>), or None for the plain service."""
    name = os.environ.get(INSTANCE_ENV, "")
    if not name:
        return None
    if not re.match(INSTANCE_PATTERN, name):
        raise ConfigError(f"{INSTANCE_ENV}: {name!r} is not a printer name; use letters, digits, - and _")
    return name


def instance_config_path(name: str) -> Path:
    return ETC_DIR / f"{name}.toml"


def default_state_dir() -> Path:
    """Each instance keeps its own state below the Pi's (which holds what they share)."""
    name = instance_name()
    return DEFAULT_STATE_DIR / name if name else DEFAULT_STATE_DIR


def default_printer_id() -> str:
    """The instance's name, or the hostname, reduced to what is safe in an MQTT topic and a Home
    Assistant id."""
    if name := instance_name():
        return name
    slug = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().lower()).strip("-")
    return slug or "printer"


class _Section(BaseModel):
    # A misspelt key is a mistake the user wants to hear about, not a silently ignored line.
    model_config = ConfigDict(extra="forbid", validate_default=True)


class AgentSection(_Section):
    printer_id: str = Field(default_factory=default_printer_id, pattern=INSTANCE_PATTERN)
    state_dir: Path = Field(default_factory=default_state_dir)
    # What every printer's agent on this Pi shares (the month's Gadget calls). None: the plain
    # service's state dir, i.e. state_dir itself, or for a printer instance its parent.
    shared_state_dir: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("shared_state_dir", mode="after")
    @classmethod
    def _shared_default(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        state_dir = info.data.get("state_dir")
        if value is not None or state_dir is None:
            return value
        return state_dir.parent if instance_name() else state_dir

    @field_validator("shared_state_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

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
    # Rectangles [x0, y0, x1, y1] in fractions of the frame: painted over (masks), or kept (crop).
    # Set here (or in the environment), they win over what the page saved in the state directory.
    masks: list[tuple[float, float, float, float]] = Field(default_factory=list, max_length=32)
    crop: tuple[float, float, float, float] | None = None

    @field_validator("masks")
    @classmethod
    def _masks_in_frame(cls, value: list[tuple[float, float, float, float]]) -> list[Any]:
        return [check_rect(rect, "mask") for rect in value]

    @field_validator("crop", mode="before")
    @classmethod
    def _crop_in_frame(cls, value: Any) -> Any:
        if value in (None, [], ""):
            return None  # `crop = []` in the file: no crop, and the page's crop is not used
        return check_crop(tuple(value)) if isinstance(value, list | tuple) else value

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value == "picamera2" or value.startswith(("http://", "https://")):
            return value
        for prefix in ("dir:", "picamera2:"):
            if value.startswith(prefix) and len(value) > len(prefix):
                return value
        raise ValueError(
            "must be 'picamera2' (the first camera), 'picamera2:N' (picamera2's camera N), "
            "'picamera2:NAME' (the camera whose model or id contains NAME), an http(s):// snapshot URL, "
            "or dir:/path/to/jpegs"
        )


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
    # What the budget caps: the calls of every printer's agent on this Pi together (they share the
    # API key and its allowance), or this printer's alone (each printer has a key of its own).
    budget_scope: Literal["pi", "printer"] = "pi"
    # Spread the budget's remaining calls over the month, assuming this many printing hours a day;
    # 0 = inspect at the service's pace until the budget is used up.
    budget_spread_hours_per_day: float = Field(0.0, ge=0, le=24)
    # A print out of the printer's reach whose picture has not moved for this long is still:
    # inspections stop until either comes back (agent.stillness). 0 = off.
    still_after_s: float = Field(600.0, ge=0, le=86400)
    # A print the printer says is printing whose position and picture have not moved for this long
    # has stalled: print_stalled, once. 0 = off.
    stalled_after_s: float = Field(600.0, ge=0, le=86400)

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


# What can notify: event types, plus `detection_stopped` (a detection_error that stopped inspections
# until a person acts) and `pause_reminder` (LayerGuard's pause still unattended).
NOTIFY_EVENTS = (
    "failure_warning",
    "failure_paused",
    "pause_failed",
    "printer_error",
    "heaters_off",
    "detection_stopped",
    "pause_reminder",
    "print_stalled",
    "detection_error",
    "print_started",
    "print_paused",
    "print_resumed",
    "print_finished",
    "print_cancelled",
    "print_lost",
    "print_still",
)
NotifyEvent = Literal[NOTIFY_EVENTS]  # type: ignore[valid-type]


class NotifySection(_Section):
    # Apprise URLs; they carry tokens, so also read from the secret file notify__urls, one per line.
    urls: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    events: Annotated[list[NotifyEvent], NoDecode] = Field(default_factory=lambda: list(NOTIFY_EVENTS[:8]))
    attach_snapshot: bool = True
    # LayerGuard's pause still unattended this long notifies once more; 0 = no reminder.
    reminder_after_s: float = Field(1800.0, ge=0, le=7 * 86400)

    @field_validator("urls", "events", mode="before")
    @classmethod
    def _one_per_line(cls, value: Any) -> Any:
        """A secret file or an environment variable holds one item per line (or space-separated),
        or a JSON list."""
        if isinstance(value, str):
            return json.loads(value) if value.lstrip().startswith("[") else value.split()
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


class HistorySection(_Section):
    enabled: bool = True
    keep_days: int = Field(90, ge=1, le=3650)
    max_db_mb: float = Field(50.0, gt=0)  # the oldest ended prints go first beyond this
    # Inspected frames kept as evidence around a warning or pause: before it (and it), after it.
    frames_before: int = Field(3, ge=0, le=20)
    frames_after: int = Field(2, ge=0, le=20)
    max_evidence_mb: float = Field(200.0, ge=0)
    # The timeline picture is drawn by a worker process that gets this long (a Pi Zero is slow).
    report_timeout_s: float = Field(60.0, gt=0, le=600)


class WebSection(_Section):
    enabled: bool = True
    # Port 80, so the Pi answers at http://<hostname>.local/ (the systemd unit grants
    # CAP_NET_BIND_SERVICE); "127.0.0.1:8080" keeps the page to this machine.
    listen: str = "0.0.0.0:80"
    auth: Literal["password", "none"] = "password"
    # The login: a secret file web__password, or a hash from `layerguard password --hash`;
    # neither set: one is generated at first start and kept in agent.state_dir.
    password: SecretStr = SecretStr("")
    password_hash: str = Field("", pattern=r"^(|scrypt\$[0-9]+\$[0-9]+\$[0-9]+\$[0-9a-f]+\$[0-9a-f]+)$")
    session_hours: float = Field(12.0, gt=0, le=24 * 90)
    # Host names the page answers to besides its own name, name.local and addresses (a reverse proxy).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError('must be address:port, e.g. "0.0.0.0:80" or "127.0.0.1:8080"')
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        return value.split() if isinstance(value, str) else value

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


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
                if not _is_secret(key_field):
                    continue
                # The first directory that holds the file wins: a systemd credential is not
                # overridden (or made unreadable) by a copy lying in /etc/layerguard/secrets.
                path = next((p for d in self.dirs if (p := d / f"{section_name}__{key}").is_file()), None)
                if path is not None:
                    found.setdefault(section_name, {})[key] = read_secret(
                        path, f"{section_name}.{key}", one_per_line=_is_secret_list(key_field)
                    )
        return found


def read_secret(path: Path, setting: str, *, one_per_line: bool = False) -> str:
    """The secret in `path`, stripped; a file that cannot stand for it is a ConfigError naming the
    file and the setting, never quoting the content (a half-right secret is still a secret)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the secret file for {setting}: {exc.strerror or exc}; "
            "the agent's user needs read access"
        ) from None
    try:
        secret = utf8_text(raw).strip()
    except ValueError as exc:
        raise ConfigError(f"{path}: the secret file for {setting} {exc}") from None
    if not secret:
        raise ConfigError(
            f"{path}: the secret file for {setting} is empty; write the secret in it or remove it"
        )
    allowed = "\r\n" if one_per_line else ""
    if any(ord(c) < 32 and c not in allowed for c in secret):
        what, shape = (
            ("control characters", "one per line")
            if one_per_line
            else (
                "control characters or several lines",
                "alone, as one line",
            )
        )
        raise ConfigError(
            f"{path}: the secret file for {setting} holds {what}; "
            f"it must hold the secret {shape}, as UTF-8 text"
        )
    return secret


def utf8_text(raw: bytes) -> str:
    """`raw` as UTF-8 (a leading byte-order mark is dropped); ValueError says what it is instead.

    Windows editors save "Unicode" as UTF-16, which reads as NUL-riddled text if taken as UTF-8.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) > 1 and b"\x00" in raw):
        raise ValueError('is saved as UTF-16 ("Unicode"); save it as UTF-8')
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 text (byte {exc.start} is not valid); save it as UTF-8") from None


def _is_secret(field: FieldInfo) -> bool:
    return field.annotation is SecretStr or _is_secret_list(field)


def _is_secret_list(field: FieldInfo) -> bool:
    """A list of secrets (notify.urls): its file holds one per line."""
    return field.annotation == list[SecretStr]


def secret_dirs() -> list[Path]:
    configured = os.environ.get(SECRET_DIRS_ENV)
    if configured:
        return [Path(p) for p in configured.split(os.pathsep) if p]
    dirs = [Path(p) for p in DEFAULT_SECRET_DIRS]
    if name := instance_name():  # the printer's own secrets first, then the Pi's (a shared API key)
        dirs.insert(0, ETC_DIR / name / "secrets")
    if credentials := os.environ.get("CREDENTIALS_DIRECTORY"):
        dirs.insert(0, Path(credentials))
    return dirs


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        # Unknown sections in the file are errors (extra="forbid"); the environment is checked
        # by unknown_env_settings(), since it also holds variables that are none of ours.
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    agent: AgentSection = Field(default_factory=AgentSection)
    printer: PrinterSection = Field(default_factory=PrinterSection)
    camera: CameraSection = Field(default_factory=CameraSection)
    detection: DetectionSection = Field(default_factory=DetectionSection)
    mqtt: MqttSection = Field(default_factory=MqttSection)
    notify: NotifySection = Field(default_factory=NotifySection)
    history: HistorySection = Field(default_factory=HistorySection)
    web: WebSection = Field(default_factory=WebSection)

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
    if name := instance_name():
        return instance_config_path(name), True
    return DEFAULT_CONFIG_PATH, False


def load_settings(explicit: str | Path | None = None) -> Settings:
    """Read and validate the configuration; every problem becomes one ConfigError line per setting."""
    path, required = config_path(explicit)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(utf8_text(path.read_bytes()))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{path}: the config file {exc}") from None
    elif required:
        raise ConfigError(f"{path}: config file not found")
    env_problems = unknown_env_settings(os.environ)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError("\n".join([*env_problems, describe_validation_error(exc)])) from None
    except SettingsError as exc:  # e.g. LAYERGUARD_MQTT='{...' that is not JSON
        raise ConfigError(
            f"environment: {exc}; set one key at a time as {ENV_PREFIX}<SECTION>__<KEY>"
        ) from None
    if env_problems:
        raise ConfigError("\n".join(env_problems))
    return settings


def unknown_env_settings(environ: Mapping[str, str]) -> list[str]:
    """`LAYERGUARD_<SECTION>__<KEY>` variables whose section does not exist, one line each.

    These are errors like an unknown section in the file: the variable's shape says it is meant
    as a setting. (An unknown key of a known section is caught by validation, as in the file.)
    """
    sections = list(Settings.model_fields)
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or "__" not in upper:
            continue
        section = upper.removeprefix(ENV_PREFIX).split("__", 1)[0].lower()
        if section not in sections:
            hint = _suggest(section, sections, ENV_PREFIX + "{}__…", "sections", upper=True)
            problems.append(f"{name}: unknown section {section!r}{hint}")
    return problems


def env_warnings(environ: Mapping[str, str]) -> list[str]:
    """`LAYERGUARD_*` variables that are neither settings nor known: likely a single `_` typo.

    Only warned about, since the prefix may be shared with a wrapper script's own variables.
    """
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and "__" not in upper and upper not in OTHER_ENV:
            rest = upper.removeprefix(ENV_PREFIX)
            section, _, key = rest.partition("_")
            hint = (
                f"; did you mean {ENV_PREFIX}{section}__{key}?"
                if section.lower() in Settings.model_fields
                else ""
            )
            warnings.append(f"{name} is not a LayerGuard setting and is ignored{hint}")
    return warnings


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        name = ".".join(loc) or "configuration"
        env = ENV_PREFIX + "__".join(loc).upper()
        if err["type"] == "extra_forbidden":
            lines.append(f"{name}: {_unknown(loc)}")
            continue
        got = f" (got {err['input']!r})" if _showable(loc, err.get("input")) else ""
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}{got} [file key {name}, or {env}]")
    return "\n".join(lines)


def _unknown(loc: list[str]) -> str:
    """Why `loc` is not a setting, with the nearest real name; generic over sections and keys."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        annotation = model.model_fields[part].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation
    names = list(model.model_fields)
    if model is Settings:
        homes = [name for name, field in Settings.model_fields.items() if loc[-1] in _keys(field)]
        if homes:  # a key written above every [section] line
            return f"unknown section; {loc[-1]} is a key of [{homes[0]}]: put it under that line"
        return "unknown section" + _suggest(loc[-1], names, "[{}]", "sections")
    return "unknown key" + _suggest(loc[-1], names, ".".join(loc[:-1]) + ".{}", "keys")


def _keys(section: FieldInfo) -> list[str]:
    model = section.annotation
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _suggest(name: str, choices: list[str], form: str, kind: str, upper: bool = False) -> str:
    """`; did you mean X?` for a close name, else the list of valid ones (short enough to read)."""
    close = difflib.get_close_matches(name.lower(), choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {form.format(close[0].upper() if upper else close[0])}?"
    return f"; the {kind} are {', '.join(choices)}"


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
