"""Server configuration: one frozen value built from flags and environment.

:func:`build_parser` describes every flag (and, in ``--help``, every
environment variable); :func:`config_from_args` turns ``argv`` plus an
environment mapping into a :class:`ServerConfig`, or raises
:class:`ConfigError` with one line saying what is wrong. It reads nothing
else (no ``os.environ``, no files), so tests call it directly.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NoReturn

from patter_core import Entropy, PatterError
from patter_core._base_urls import BASE_URL_VARIABLES
from patter_core.http import ServerLimits, TrustedProxies
from patter_core.monitor._access import token_problem
from patter_core.providers._openai_config import REASONING_EFFORTS
from patter_core.providers._selection import default_provider

from ._agent import PROVIDER_NAMES, ProviderName
from ._console import StartupInfo
from ._errors import ConfigError
from ._settings import (
    KEY_VARIABLES,
    URL_VARIABLES,
    CarrierSettings,
    ProviderSettings,
    build_settings,
    given,
    normalise_webhook_host,
)

__all__ = [
    "PROVIDERS",
    "ConfigError",
    "ServerConfig",
    "build_parser",
    "config_from_args",
    "normalise_webhook_host",
]

Provider = ProviderName
PROVIDERS = PROVIDER_NAMES
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Each worker is a whole process with its own event loop; more than this on
# one machine is a configuration mistake, not a need.
MAX_WORKERS = 64
# A stream secret shorter than this is guessable; 32 bytes are generated.
MIN_SECRET_CHARS = 16

ENVIRONMENT = (
    ("PATTER_WEBHOOK_URL", "public host for signatures and stream URLs (as --webhook-url)"),
    ("PATTER_STREAM_SECRET", "stream-token secret(s) shared by instances: new,old while rolling"),
    ("TWILIO_ACCOUNT_SID", "Twilio account (REST calls)"),
    ("TWILIO_AUTH_TOKEN", "Twilio auth token: enables X-Twilio-Signature checks"),
    ("TWILIO_SIGNING_KEYS", "id=secret,id2=secret2: HMAC-SHA256 signing keys"),
    ("TELNYX_API_KEY", "Telnyx API key (answers calls through Call Control)"),
    ("TELNYX_PUBLIC_KEY", "Telnyx webhook public key: enables Ed25519 checks"),
    ("OPENAI_API_KEY", "OpenAI key (provider openai; speech-to-text in pipeline)"),
    ("ELEVENLABS_API_KEY", "ElevenLabs key (private agents; text-to-speech in pipeline)"),
    ("ELEVENLABS_AGENT_ID", "ElevenLabs Conversational AI agent (provider elevenlabs)"),
    ("DEEPGRAM_API_KEY", "Deepgram key (speech-to-text in pipeline)"),
    *((name, f"override {default}") for name, default in BASE_URL_VARIABLES.items()),
    ("PATTER_START_TIMEOUT", "as --start-timeout"),
    ("PATTER_MEDIA_TIMEOUT", "as --media-timeout"),
    ("PATTER_PROVIDER_TIMEOUT", "as --provider-timeout"),
    ("PATTER_SHUTDOWN_GRACE", "as --shutdown-grace"),
    ("PATTER_DASHBOARD_TOKEN", "as --dashboard-token"),
)

#: Timeout flags: (flag, environment variable, default seconds, help).
TIMEOUTS = (
    ("start_timeout", "PATTER_START_TIMEOUT", 10.0, "seconds a media stream may take to send start"),
    ("media_timeout", "PATTER_MEDIA_TIMEOUT", 15.0, "seconds a started call may go without media"),
    (
        "provider_timeout",
        "PATTER_PROVIDER_TIMEOUT",
        5.0,
        "seconds from start until the provider session must be ready",
    ),
    (
        "shutdown_grace",
        "PATTER_SHUTDOWN_GRACE",
        30.0,
        "seconds live calls may go on after SIGTERM",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    #: Carrier accounts, the public host and number (the model ``Patter`` builds too).
    carriers: CarrierSettings = field(default_factory=CarrierSettings)
    #: Provider keys and endpoints.
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    provider: Provider = "echo"
    system_prompt: str | None = None
    first_message: str | None = None
    voice: str | None = None
    model: str | None = None
    #: OpenAI agent options (see ``Agent``): phone defaults.
    turn_detection: Literal["server_vad", "semantic_vad"] = "server_vad"
    noise_reduction: Literal["near_field", "far_field", "off"] = "near_field"
    #: OpenAI Realtime's audio: "pcmu" (passthrough) or "pcm24k" (transcoded).
    provider_audio: Literal["pcmu", "pcm24k"] = "pcmu"
    reasoning_effort: str | None = None
    #: The provider's session cap in seconds (an ElevenLabs agent's maximum duration).
    provider_max_duration: float | None = None
    #: Per-call watchdogs (see ``Agent``): a quiet line's reprompt, the call's cap.
    silence_timeout: float | None = None
    max_duration: float | None = 3600.0
    recording: bool = False
    voicemail_message: str | None = None
    #: Said by the carrier before hanging up when the provider fails.
    error_message: str | None = None
    start_timeout: float = 10.0
    media_timeout: float = 15.0
    provider_timeout: float = 5.0
    workers: int = 1
    trusted_proxies: tuple[str, ...] = ()
    stream_secret: str = field(default="", repr=False)
    #: True when the secret was drawn at start-up (not shared with anyone).
    stream_secret_generated: bool = False
    log_level: str = "INFO"
    #: Leave what the caller and the agent say out of the log.
    quiet_transcripts: bool = False
    reuse_port: bool = False
    #: The anyio backend to run on.
    backend: Literal["asyncio", "trio"] = "asyncio"
    #: The asyncio event loop: uvloop when installed, unless asked otherwise
    #: (``event_loop()``); None on trio.
    loop: Literal["asyncio", "uvloop"] | None = "asyncio"
    #: HMAC-SHA256 signing keys, ``(key id, secret)`` pairs.
    twilio_signing_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    limits: ServerLimits = field(default_factory=ServerLimits)
    #: Opens the dashboard and /metrics on a non-loopback bind.
    dashboard_token: str | None = field(default=None, repr=False)
    #: Directory for one stereo WAV per call (None: no local recordings).
    local_recording: str | None = None

    def startup_info(self, *, port: int, agent: str) -> StartupInfo:
        """What the start-up block says about this configuration."""
        carriers = self.carriers
        return StartupInfo(
            host=self.host,
            port=port,
            agent=agent,
            webhook_host=carriers.webhook_host,
            twilio_checked=bool(carriers.twilio_token or self.twilio_signing_keys),
            telnyx_checked=bool(carriers.telnyx_public_key),
            twilio_configured=bool(carriers.twilio_sid or carriers.twilio_token),
            telnyx_configured=bool(carriers.telnyx_key),
            stream_secret_generated=self.stream_secret_generated,
            event_loop="uvloop" if self.loop == "uvloop" else "",
        )


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, not {text!r}")
    return int(text)


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"workers must be 1-{MAX_WORKERS}, not {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value


# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


def host_problem(host: object, name: str = "--host") -> str | None:
    """Why ``host`` cannot be a local address to bind, or None.

    An IP address must parse as one (``999.1.1.1`` does not); a name must be
    a syntactically valid host name (whether it resolves is the bind's to say).
    """
    import ipaddress

    if not isinstance(host, str) or not host:
        return f"{name} must be an IP address or a host name, not {host!r}"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        numeric = all(part.isdigit() for part in host.split("."))
        if numeric or ":" in host or not _HOST_NAME.fullmatch(host):
            return f"{name} must be an IP address of this machine or a host name, not {host!r}"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="patter-local",
        description="Local mode for phone-call AI agents: answer Twilio and Telnyx calls "
        "on this machine and connect them to an AI provider.",
    )
    from patter_core import __version__

    parser.add_argument("--version", action="version", version=f"patter-local {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    env_help = "environment:\n" + "\n".join(f"  {name:<22} {text}" for name, text in ENVIRONMENT)
    serve = commands.add_parser(
        "serve",
        help="run the webhook and media-stream server",
        description="Run the webhook and media-stream server.",
        epilog=env_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--quiet-transcripts",
        action="store_true",
        help="do not log what the caller and the agent say (logged at INFO by default)",
    )
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to bind, 1-65535 (default 8000)"
    )
    serve.add_argument(
        "--webhook-url",
        help="public host carriers reach, e.g. abc.ngrok.app (env PATTER_WEBHOOK_URL)",
    )
    serve.add_argument("--phone-number", help="the number calls arrive on (E.164)")
    serve.add_argument(
        "--provider",
        choices=PROVIDERS,
        help="AI provider (default: openai or elevenlabs when its key is set, else echo)",
    )
    serve.add_argument("--system-prompt", help="instructions for the agent")
    serve.add_argument("--first-message", help="what the agent says first")
    serve.add_argument("--voice", help="provider voice id")
    serve.add_argument("--model", help="provider model name")
    serve.add_argument(
        "--turn-detection",
        choices=("server_vad", "semantic_vad"),
        default="server_vad",
        help="OpenAI turn detection (default server_vad)",
    )
    serve.add_argument(
        "--noise-reduction",
        choices=("near_field", "far_field", "off"),
        default="near_field",
        help="OpenAI input noise reduction (default near_field: a handset)",
    )
    serve.add_argument(
        "--provider-audio",
        choices=("pcmu", "pcm24k"),
        default="pcmu",
        help="OpenAI's audio: pcmu (default: G.711 both ways, no transcoding) or "
        "pcm24k (16-bit 24 kHz, transcoded here)",
    )
    serve.add_argument(
        "--reasoning-effort",
        choices=REASONING_EFFORTS,
        help="reasoning models only (default: the provider's)",
    )
    serve.add_argument(
        "--provider-max-duration",
        type=_seconds,
        help="the provider's session cap in seconds (an ElevenLabs agent's maximum duration)",
    )
    serve.add_argument(
        "--silence-timeout",
        type=_seconds,
        help="seconds of a quiet line before a reprompt; again after it: goodbye (default off)",
    )
    serve.add_argument(
        "--max-duration",
        type=_seconds,
        default=3600.0,
        help="longest call in seconds: a closing line, then the hang-up (default 3600)",
    )
    serve.add_argument(
        "--recording", action="store_true", help="record calls (through the carrier's REST API)"
    )
    serve.add_argument("--voicemail-message", help="message to leave when a machine answers")
    serve.add_argument(
        "--error-message",
        help="said to the caller before the hang-up when the provider fails (default: silence)",
    )
    for name, variable, default, text in TIMEOUTS:
        serve.add_argument(
            "--" + name.replace("_", "-"),
            metavar="SECONDS",
            help=f"{text} (default {default:g}; env {variable})",
        )
    serve.add_argument(
        "--workers", type=_workers, default=1, help="worker processes sharing the port (default 1)"
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="IP",
        help="proxy whose X-Forwarded-For is believed (repeatable; IP or network)",
    )
    serve.add_argument(
        "--twilio-signing-key",
        action="append",
        default=[],
        metavar="KEY_ID=SECRET",
        help="Twilio HMAC-SHA256 signing key (repeatable; env TWILIO_SIGNING_KEYS)",
    )
    serve.add_argument("--stream-secret", help="stream-token secret (env PATTER_STREAM_SECRET)")
    serve.add_argument(
        "--local-recording",
        metavar="DIR",
        help="write one stereo WAV per call here (caller left, agent right)",
    )
    serve.add_argument(
        "--dashboard-token",
        metavar="TOKEN",
        help="token for /dashboard and /metrics off loopback (env PATTER_DASHBOARD_TOKEN)",
    )
    serve.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, help="default INFO"
    )
    serve.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="async library (default asyncio)",
    )
    serve.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="asyncio's event loop: auto (default) takes uvloop when it is installed "
        "(pip install 'patter-local[fast]')",
    )
    # Internal: set by the parent of --workers on its children.
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    from .dial import register_dial  # the carrier in a box

    register_dial(commands)
    return parser


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _timeout_setting(
    flag_value: str | None, env: Mapping[str, str], name: str, variable: str, default: float
) -> float:
    """A timeout from its flag, else its environment variable, else the default."""
    text, source = flag_value, "--" + name.replace("_", "-")
    if text is None:
        text, source = _env(env, variable), variable
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{source} must be a positive number of seconds, not {text!r}")
    return value


def event_loop(choice: str, backend: str) -> Literal["asyncio", "uvloop"] | None:
    """The asyncio event loop ``--loop`` asks for on ``backend`` (None on trio)."""
    installed = importlib.util.find_spec("uvloop") is not None
    if backend != "asyncio":
        if choice == "uvloop":
            raise ConfigError("--loop uvloop needs --backend asyncio")
        return None
    if choice == "uvloop" and not installed:
        raise ConfigError("--loop uvloop: uvloop is not installed (pip install 'patter-local[fast]')")
    if choice == "uvloop" or (choice == "auto" and installed):
        return "uvloop"
    return "asyncio"


def signing_keys(items: Sequence[str], source: str) -> tuple[tuple[str, str], ...]:
    """``["id=secret", ...]`` as pairs; a malformed item names its position,
    never its secret."""
    from patter_core.webhooks import TwilioSignatureValidator

    keys: dict[str, str] = {}
    for number, item in enumerate(items, 1):
        key_id, sep, secret = item.strip().partition("=")
        key_id = key_id.strip()
        if not sep or not key_id or not secret.strip():
            raise ConfigError(f"{source}: item {number} is not KEY_ID=SECRET")
        if keys.get(key_id, secret.strip()) != secret.strip():
            raise ConfigError(f"{source}: key {key_id!r} is given twice with different secrets")
        keys[key_id] = secret.strip()
    if keys:
        try:
            TwilioSignatureValidator(None, shared_keys=keys)
        except PatterError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return tuple(keys.items())


def config_from_args(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    entropy: Entropy = secrets,
) -> tuple[str, ServerConfig]:
    """Parse ``argv`` (without the program name) into ``(command, config)``."""
    # --help prints and raises SystemExit(0), which the caller lets through.
    args = build_parser().parse_args(list(argv))
    problem = host_problem(args.host)
    if problem:
        raise ConfigError(problem)
    # Keys and endpoints come from the environment only; the same model as
    # Patter(...) builds, checked by the same code.
    carriers, providers = build_settings(
        {
            "webhook_host": given(
                args.webhook_url or None, "--webhook-url", env, "PATTER_WEBHOOK_URL"
            ),
            "phone_number": given(args.phone_number or None, "--phone-number"),
            **{
                key: given(None, variable, env, variable)
                for key, variable in (KEY_VARIABLES | URL_VARIABLES).items()
            },
        }
    )
    webhook_host = carriers.webhook_host
    try:
        TrustedProxies(args.trusted_proxy)
    except PatterError as exc:
        raise ConfigError(f"--trusted-proxy: {exc}") from None

    provider: Provider = args.provider or default_provider(
        openai_key=bool(providers.openai_key),
        elevenlabs_agent=bool(providers.elevenlabs_agent_id),
    )
    if provider == "openai" and not providers.openai_key:
        raise ConfigError("--provider openai needs OPENAI_API_KEY")
    if provider == "elevenlabs" and not providers.elevenlabs_agent_id:
        raise ConfigError("--provider elevenlabs needs ELEVENLABS_AGENT_ID")
    if args.provider_audio != "pcmu" and provider != "openai":
        raise ConfigError(f"--provider-audio applies to --provider openai, not {provider}")
    # The CLI has no on_message handler: the pipeline's replies come from the LLM.
    if provider == "pipeline" and not providers.openai_key:
        raise ConfigError("--provider pipeline needs OPENAI_API_KEY (its LLM)")
    twilio_rest = carriers.twilio_sid and carriers.twilio_token
    if args.recording and not (twilio_rest or carriers.telnyx_key):
        raise ConfigError(
            "--recording needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or TELNYX_API_KEY"
        )

    twilio_token = carriers.twilio_token
    if args.twilio_signing_key:
        twilio_keys = signing_keys(args.twilio_signing_key, "--twilio-signing-key")
    else:
        listed = _env(env, "TWILIO_SIGNING_KEYS")
        twilio_keys = signing_keys(listed.split(",") if listed else [], "TWILIO_SIGNING_KEYS")
    if (twilio_token or twilio_keys) and not webhook_host:
        raise ConfigError(
            f"{'TWILIO_AUTH_TOKEN' if twilio_token else 'a Twilio signing key'} is set but "
            "--webhook-url / PATTER_WEBHOOK_URL is not: signatures are checked against the "
            "public URL"
        )

    seconds = {
        name: _timeout_setting(getattr(args, name), env, name, variable, default)
        for name, variable, default, _ in TIMEOUTS
    }
    if args.voicemail_message and carriers.twilio_sid:
        from patter_core.webhooks._twilio_flow import voicemail_problem

        problem = voicemail_problem(args.voicemail_message)
        if problem:
            raise ConfigError(problem.replace("voicemail_message", "--voicemail-message", 1))
    secret = args.stream_secret or _env(env, "PATTER_STREAM_SECRET")
    generated = secret is None
    if secret is None:
        secret = entropy.token_bytes(32).hex()
    elif any(len(part) < MIN_SECRET_CHARS for part in secret.split(",")):
        raise ConfigError(
            f"each stream secret must be at least {MIN_SECRET_CHARS} characters "
            "(several: comma-separated, newest first)"
        )

    dashboard_token = args.dashboard_token or _env(env, "PATTER_DASHBOARD_TOKEN")
    if dashboard_token:
        problem = token_problem(dashboard_token)
        if problem:
            raise ConfigError(problem.replace("the dashboard token", "--dashboard-token", 1))

    config = ServerConfig(
        local_recording=args.local_recording,
        dashboard_token=dashboard_token,
        host=args.host,
        port=args.port,
        carriers=carriers,
        providers=providers,
        provider=provider,
        system_prompt=args.system_prompt,
        first_message=args.first_message,
        voice=args.voice,
        model=args.model,
        turn_detection=args.turn_detection,
        noise_reduction=args.noise_reduction,
        provider_audio=args.provider_audio,
        reasoning_effort=args.reasoning_effort,
        provider_max_duration=args.provider_max_duration,
        silence_timeout=args.silence_timeout,
        max_duration=args.max_duration,
        recording=args.recording,
        voicemail_message=args.voicemail_message,
        error_message=args.error_message,
        start_timeout=seconds["start_timeout"],
        media_timeout=seconds["media_timeout"],
        provider_timeout=seconds["provider_timeout"],
        limits=ServerLimits(shutdown_grace=seconds["shutdown_grace"]),
        workers=args.workers,
        trusted_proxies=tuple(args.trusted_proxy),
        stream_secret=secret,
        stream_secret_generated=generated,
        log_level=args.log_level,
        quiet_transcripts=args.quiet_transcripts,
        reuse_port=args.reuse_port or args.workers > 1,
        backend=args.backend,
        loop=event_loop(args.loop, args.backend),
        twilio_signing_keys=twilio_keys,
    )
    return str(args.command), config
