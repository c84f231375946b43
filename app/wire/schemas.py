"""The service's own response models: transcripts, health, jobs (the forms are ``app/wire/forms.py``)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, Field

from app.engine.whisper_models import ModelStatus
from app.transcript import DiarizationReport, Segment, Word, WordTimeSource


class SpeakerOut(BaseModel):
    duration: float = Field(description="Seconds this speaker talks, from the diarization turns.")
    segments: int = Field(description="Transcript segments attributed to this speaker.")


class TranscriptionResponse(BaseModel):
    """The service's own JSON (`output=json` on /transcribe), built from ``app/transcript.py``'s types."""

    text: str
    language: str | None
    language_probability: float | None
    duration: float
    model: str
    segments: list[Segment]
    word_segments: list[Word]
    speakers: dict[str, SpeakerOut]
    num_speakers: int
    diarization_device: str | None
    diarization: DiarizationReport
    word_timestamps_method: WordTimeSource | None = Field(
        description="What produced the word times: a wav2vec2 aligner or Whisper's cross-attention."
    )
    timings: dict[str, float] = Field(
        description="Seconds per stage: decode, vad, language_detection, asr, alignment, diarization, total. "
        "`features` (log-Mel computed by this request) is part of asr and Whisper alignment; the rest of "
        "those is waiting for and running batches that may be shared with other requests."
    )
    warnings: list[str]


class StageOut(BaseModel):
    enabled: bool
    loaded: bool
    loading: bool = Field(
        default=False, description="Still loading while the service serves (diarization loads after ready)."
    )
    model: str | None = None
    device: str | None = None
    detail: str | None = None


class WarmupOut(BaseModel):
    total_s: float
    asr_s: float
    alignment_s: float
    diarization_s: float
    audio_s: float


class CapabilityOut(BaseModel):
    native: str | None = Field(description="The GPU's own compute capability, e.g. SM_121.")
    reported: str | None = Field(description="What torch reports to the libraries (after the Blackwell spoof).")
    spoofed: bool
    reason: str | None = None


class AcceleratorProblemOut(BaseModel):
    package: str
    version: str
    reason: str = Field(description="Why the GPU is not used, e.g. a CPU-only build of the package.")
    fix: str


class GpuLibraryOut(BaseModel):
    name: str
    version: str
    built_with_cuda: bool
    devices: int = Field(description="GPUs the library sees.")
    error: str | None = None


class AcceleratorOut(BaseModel):
    """Whether an NVIDIA GPU is present and whether torch and CTranslate2 can use it."""

    gpu_present: bool = Field(description="Device nodes, the driver library or nvidia-smi were found.")
    evidence: list[str]
    libraries: list[GpuLibraryOut]
    problems: list[AcceleratorProblemOut] = Field(
        description="Each keeps a present GPU idle; with DEVICE=auto the service runs on the CPU and is degraded."
    )


class JitCacheOut(BaseModel):
    path: str
    size_bytes: int
    files: int
    environment: dict[str, str | None] = Field(description="The CUDA_CACHE_* / CUDA_FORCE_PTX_JIT values in effect.")


class GpuMemoryOut(BaseModel):
    used_mb: float = Field(description="Device memory in use (all processes on this GPU, as CUDA reports it).")
    torch_allocated_mb: float = Field(description="Held by live torch tensors (VAD, aligner, diarizer).")
    torch_reserved_mb: float = Field(description="Kept by torch's caching allocator. Whisper's CTranslate2 is apart.")


class BatchingOut(BaseModel):
    """The Whisper scheduler: its threads make every model call, in batches shared by requests."""

    replicas: int = Field(description="Batches run at once, each on its own model replica (WHISPER_REPLICAS).")
    waiting_jobs: int = Field(description="Groups of windows that requests have prepared and queued.")
    waiting_windows: int = Field(description="30 s windows queued for the encoder and decoder.")
    running_windows: int = Field(description="Windows in the batches on the device now.")
    batches: int = Field(description="Batches run since start-up (warmup included).")
    windows: int = Field(description="Windows run since start-up.")
    joined_windows: int = Field(
        default=0, description="Of those, windows that took the place of one that ended in a running batch."
    )
    mean_batch_size: float | None = Field(description="Windows a batch started with, on average.")
    busy_s: float = Field(
        description="Seconds spent running batches, summed over the replicas (up to `replicas` seconds a second)."
    )
    model_s: dict[str, float] = Field(
        default_factory=dict, description="Of those, seconds in each kind of model call (encode, decode, ...)."
    )
    decoded_windows: int = Field(default=0, description="Windows transcribed since start-up (warmup included).")
    decoded_tokens: int = Field(
        default=0, description="Text tokens the decoder produced for them: the work behind a speed figure."
    )


class BudgetOut(BaseModel):
    used_mb: float
    limit_mb: float
    peak_mb: float = Field(description="The most held at once since start-up.")
    refused: int = Field(description="Reservations refused (each a 503 with Retry-After).")


class RealtimeOut(BaseModel):
    sessions: int = Field(description="Live sessions (`/v1/realtime`) open now.")
    limit: int = Field(description="MAX_REALTIME_SESSIONS: past it a new session is refused.")
    opened: int = Field(description="Live sessions opened since start-up.")
    refused: int = Field(description="Live sessions refused at the limit since start-up.")
    partial_model: str | None = Field(
        default=None, description="REALTIME_PARTIAL_MODEL once loaded: the model live partials decode with."
    )


class QueueOut(BaseModel):
    in_flight: int = Field(description="Transcriptions admitted: uploading, decoding, queued or running.")
    limit: int = Field(description="MAX_PENDING_REQUESTS: past it, requests get 503 with Retry-After.")
    refused: int = Field(default=0, description="Requests refused at admission (over the limit, or draining).")
    cancelled: int = Field(default=0, description="Transcriptions stopped early: client disconnected, or shutdown.")
    draining: bool = False
    budgets: dict[str, BudgetOut] = Field(
        default_factory=dict, description="`memory`: decoded audio held; `disk`: uploads spooled (bytes in flight)."
    )
    batching: BatchingOut | None = None
    realtime: RealtimeOut | None = None


class ModelOut(BaseModel):
    """One Whisper model this server may serve (WHISPER_MODELS) and its state now."""

    id: str
    default: bool = Field(description="The model a request gets without `model` (or with `whisper-1`).")
    state: Literal["loaded", "loading", "unloading", "unloaded"] = Field(
        description="`unloaded` models load on their first request (that request waits)."
    )
    in_use: int = Field(description="Requests using the model now.")
    loaded_at: float | None = Field(description="When the current load finished (Unix seconds).")
    idle_since: float | None = Field(
        description="Loaded and unused since then (Unix seconds); unloaded after MODEL_IDLE_S (never the default "
        "or REALTIME_PARTIAL_MODEL)."
    )
    loads: int
    unloads: int
    memory_mb: float | None = Field(description="What the model took at its last load (GPU memory on CUDA).")
    last_error: str | None = Field(description="Why its last load failed, if it did.")

    @classmethod
    def of(cls, model: ModelStatus, model_id: str | None = None, **more: Any) -> Self:
        fields = {name: getattr(model, name) for name in ModelOut.model_fields if name != "id"}
        return cls(id=model_id or model.id, **{**fields, "state": model.state.value}, **more)


class VoiceOut(BaseModel):
    """A stored voice (its clip is not sent back)."""

    name: str
    seconds: float = Field(description="The clip's length.")
    created_at: float = Field(description="When it was stored (Unix seconds).")


class VoiceList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VoiceOut]


class StartupSpanOut(BaseModel):
    step: str
    start: float
    end: float
    thread: str


class HealthResponse(BaseModel):
    status: Literal["loading", "warming", "healthy", "degraded", "failed", "draining"]
    service: str
    version: str
    device: str | None
    diarization_device: str | None
    model: str | None
    compute_type: str | None
    engine: str | None = Field(default=None, description="Whisper's engine: `torch` or `ctranslate2` (ENGINE).")
    cuda_available: bool | None
    gpu: str | None
    compute_capability: str | None
    capability: CapabilityOut | None = None
    accelerator: AcceleratorOut | None = None
    stages: dict[str, StageOut]
    degraded: list[str]
    loading: list[str] = Field(
        default_factory=list,
        description="Stages still loading while the service serves: a request that needs one waits for it "
        "(STAGE_WAIT_S). `/health?require=all` answers 503 until this is empty.",
    )
    failure: str | None = None
    startup_s: dict[str, float] = Field(
        default_factory=dict,
        description="Seconds spent in each startup step (imports, model loads, warmup); `ready` and "
        "`diarization_ready`: seconds from the process's start until then.",
    )
    startup_timeline: list[StartupSpanOut] = Field(
        default_factory=list,
        description="Each startup step's start and end, in seconds since the process started, and its thread.",
    )
    warmup: WarmupOut | None = None
    jit_cache: JitCacheOut | None = None
    queue: QueueOut
    gpu_memory: GpuMemoryOut | None = None
    models: list[ModelOut] = Field(
        default_factory=list, description="Every Whisper model a request may name (`model`), and its state."
    )


class JobProgressOut(BaseModel):
    stage: str | None = Field(
        default=None, description="The stage running: decode, vad, language_detection, asr, alignment, diarization."
    )
    fraction: float = Field(default=0.0, description="0–1, over the stages this job runs.")
    audio_seconds_done: float = Field(default=0.0, description="Audio decoded by Whisper so far.")
    audio_seconds: float | None = Field(default=None, description="The file's duration, once decoded.")
    eta_s: float | None = Field(default=None, description="Estimated seconds left, from the pace so far.")


class JobWebhookOut(BaseModel):
    state: Literal["pending", "delivered", "failed"] | None
    attempts: int
    error: str | None


class JobOut(BaseModel):
    """A job's state; ``result`` is the transcript (as /transcribe's JSON) once it succeeded."""

    id: str
    object: Literal["transcription.job"] = "transcription.job"
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: str
    started_at: str | None
    finished_at: str | None
    filename: str | None
    audio_bytes: int
    attempts: int
    worker: str | None = Field(description="The worker running it (`host:pid:id`), while it runs.")
    cache_hit: bool = Field(description="The result was stored from an earlier job on the same audio and options.")
    progress: JobProgressOut
    error: str | None
    webhook: JobWebhookOut | None
    result: TranscriptionResponse | None = None
