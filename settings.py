"""The app's settings: one typed class, read from I2V_* environment variables plus the standard
OPENAI_BASE_URL / OPENAI_API_KEY, validated at start. Secrets are SecretStr: they print as '**********'."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from i2v.request import Strategy

ROOT = Path(__file__).resolve().parent
RESERVED_USER = "local"  # studio.hosting.ANYONE: who owns the jobs made without signing in


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="I2V_", extra="ignore", validate_default=True)

    # The video model
    model: str = Field("auto", description="family id, local model folder, 'camera', or 'auto' (first with weights)")
    device: str | None = Field(None, description="cuda, cuda:1 or cpu; default cuda when available")
    devices: str | None = Field(None, description="several devices, one worker each: 'cuda:0,cuda:1' (a size caps one: "
                                "'cuda:1=40'; 'cpu,cpu' for tests); wins over I2V_DEVICE")  # fmt: skip
    offload: Strategy = Field("none", description="the engine's memory strategy when auto cannot decide (on a CPU)")
    output_dir: Path = Field(ROOT / "outputs", description="where videos are written, one unique file per job")
    lora_dir: Path = Field(ROOT / "loras", description="LoRA files (.safetensors) the page offers, and turbo's LoRAs")
    upscaler_dir: Path = Field(ROOT / "upscalers", description="image-upscaler weights (ESRGAN family, .pth or "
                               ".safetensors) for upscale x2 / x4; without them, plain Lanczos")  # fmt: skip
    interpolator_dir: Path = Field(ROOT / "interpolators", description="RIFE v4.6 weights (flownet.pkl) for interpolate "
                                   "x2 / x4; without them, optical flow")  # fmt: skip
    cache_dir: Path = Field(ROOT / ".cache" / "compile", description="compiled kernels kept between starts (speed fast)")

    # The prompt refiner
    openai_base_url: str | None = Field(None, validation_alias=AliasChoices("OPENAI_BASE_URL", "I2V_LLM_BASE_URL"))
    openai_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("OPENAI_API_KEY", "I2V_LLM_API_KEY"))
    llm_model: str | None = Field(None, description="the LLM's model name; the refiner is offline without it")
    llm_vision: bool = Field(False, description="the LLM can see images: send it the photo")
    llm_timeout_s: float = Field(30.0, gt=0, le=600)
    auto_refine: bool = Field(True, description="Generate refines the prompt first when it was not refined")

    # The server
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    auth: SecretStr | None = Field(None, description="'user:password', or several separated by commas")
    share: bool = False
    queue_size: int = Field(8, ge=1, le=1000, description="jobs waiting at most; more are refused with a message")
    api_tokens: SecretStr | None = Field(None, description="REST API bearer tokens: 'user:TOKEN', several separated by commas")
    max_upload_mb: float = Field(20.0, gt=0, le=500, description="the largest photo the API takes")
    keep_days: float | None = Field(None, gt=0, description="remove finished jobs and their videos after this many days")
    keep_gb: float | None = Field(None, gt=0, description="remove the oldest finished jobs while their videos take more")
    # Several boxes (i2v serve --ray): the job store's database, and how long a worker may go silent
    store_db: Path | None = Field(None, description="the job store's SQLite file, on the local disk of the node that holds "
                                  "it (default: in the output folder; with i2v serve --ray, "
                                  "~/.local/share/i2v-studio/jobs.sqlite3 on the head node)")  # fmt: skip
    lease_s: float = Field(60.0, ge=2, le=3600, description="a worker whose heartbeat is older than this is gone: a shared "
                           "store queues its running job again")  # fmt: skip

    @field_validator("output_dir", "lora_dir", "upscaler_dir", "interpolator_dir", "cache_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return (value if value.is_absolute() else ROOT / value).resolve()

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: str | None) -> str | None:
        from i2v.hardware import parse_devices

        if value is None or not value.strip():
            return None
        parse_devices(value)  # its ValueError names the part and the rule
        return value

    def device_specs(self):
        """The devices the pool runs jobs on: I2V_DEVICES, else the one I2V_DEVICE (default: cuda when there is one)."""
        from i2v.hardware import DeviceSpec, parse_devices

        return parse_devices(self.devices) if self.devices else [DeviceSpec(self.device, None)]

    @field_validator("openai_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"OPENAI_BASE_URL {value!r} must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("auth")
    @classmethod
    def _auth_pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        for pair in value.get_secret_value().split(","):
            user, _, password = pair.partition(":")
            if not user.strip() or not password:
                raise ValueError("I2V_AUTH must be 'user:password' pairs separated by commas")
            if user.strip() == RESERVED_USER:
                raise ValueError(f"I2V_AUTH: the user name {RESERVED_USER!r} is reserved (the owner of jobs made without sign-in)")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _token_pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        users = []
        for pair in value.get_secret_value().split(","):
            user, _, token = pair.partition(":")
            if not user.strip() or len(token.strip()) < 16:
                raise ValueError("I2V_API_TOKENS must be 'user:TOKEN' pairs separated by commas, each token 16 characters or more")
            if user.strip() == RESERVED_USER:
                raise ValueError(f"I2V_API_TOKENS: the user name {RESERVED_USER!r} is reserved (the owner of jobs made without sign-in)")
            users.append(user.strip())
        if len(set(users)) != len(users):
            raise ValueError("I2V_API_TOKENS names a user twice")
        return value

    def api_token_pairs(self) -> dict[str, str] | None:
        """user -> token, or None without tokens."""
        if self.api_tokens is None:
            return None
        return {user.strip(): token.strip() for user, _, token in
                (pair.partition(":") for pair in self.api_tokens.get_secret_value().split(","))}  # fmt: skip

    def auth_pairs(self) -> list[tuple[str, str]] | None:
        if self.auth is None:
            return None
        return [tuple(pair.split(":", 1)) for pair in self.auth.get_secret_value().split(",")]  # type: ignore[misc]

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_base_url and self.llm_model)

    @property
    def public(self) -> bool:
        return self.share or self.host not in ("127.0.0.1", "localhost", "::1")


def problems(error) -> list[str]:
    """A pydantic ValidationError of the settings as lines a person reads at start: "settings: FIELD:
    the rule" (pydantic's "Value error, " prefix left out: the words after it are ours)."""
    return [f"settings: {'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()]


def load(**overrides) -> Settings | None:
    """The settings (the environment, with `overrides` from the command line), or None once their
    problems are printed to stderr, a line each: what the app and `i2v serve` do at start."""
    import sys

    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        for line in problems(exc):
            print(line, file=sys.stderr)
        return None
