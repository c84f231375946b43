"""One live transcription session: its audio, its turns, and the events its client is sent.

Audio arrives in ``input_audio_buffer.append`` events and is resampled to 16 kHz. With server
VAD (the default) the session finds turns itself (``turns.py``); with ``turn_detection: null``
the client commits them. While a turn is open it is decoded again every ``partial_interval``
of new audio and its stable words (two decodes agree on them, or one decode has three words
after them: ``agreement.py``) go out as ``delta`` events; once the turn is committed it is
transcribed whole — words with times and, when asked, speakers — and its ``completed`` event
follows. Every decode goes through the ``Transcriber``, as routes' and jobs' do, so live turns
share the Whisper scheduler's batches with file requests (ahead of them: someone is waiting)
and a committed turn's audio is counted in ``/metrics``. A turn's speakers get the session's
labels (``speakers.py``): one per voice for the whole session, and known speakers' names. No
FastAPI here: the WebSocket route feeds events in and sends what comes out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from app.control.cancellation import CancelToken
from app.engine.audio import SAMPLE_RATE
from app.engine.decoding import Urgency
from app.engine.options import ResolvedOptions, names_without_clips, with_stored_clips
from app.errors import ModelNotFound, ServiceError
from app.live.agreement import StablePrefix
from app.live.decoding import CollectedLogprobs, turn_options
from app.live.kept_audio import KeptAudio
from app.live.pcm import BadAudio, Resampler, pcm16_from_base64
from app.live.protocol import (
    LiveConfig,
    ProtocolError,
    error,
    event,
    new_id,
    refused_as_protocol_errors,
    transcription_completed,
    transcription_delta,
    transcription_failed,
    updated,
)
from app.live.speakers import SessionSpeakers, turn_threshold
from app.live.turns import FRAME, StreamingSilero, TurnDetector, TurnEnded, TurnStarted
from app.serving.transcriber import Transcriber
from app.transcript import Transcript

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
StoredVoices = Callable[[list[str]], dict[str, str]]  # names → the tenant's stored clips (the voice book)

_MIN_COMMIT_S = 0.1  # OpenAI refuses to commit less than 100 ms of audio
_MIN_PARTIAL_S = 0.3  # too little speech for a first decode
_MAX_TURN_S = 30.0  # one Whisper window
_LANGUAGE_AFTER_S = 2.0  # a turn this long tells its language reliably enough to keep it
# At a shutdown, how long turns cancelled at the end of the grace get to end with their failed event.
CANCELLED_TURNS_SETTLE_S = 1.0


@dataclass(frozen=True)
class LiveLimits:
    max_buffer_s: float
    partial_interval_s: float


class LiveSession:
    def __init__(
        self,
        transcriber: Transcriber,
        limits: LiveLimits,
        send: Send,
        threads: Executor,
        stored_voices: StoredVoices = lambda _: {},
    ) -> None:
        self.id = new_id("sess")
        self._stored_voices = stored_voices
        self._speakers = SessionSpeakers()
        self._threads = threads
        self._transcriber = transcriber
        self._limits = limits
        self._send = send
        self._model = transcriber.capabilities().model
        self.config = LiveConfig()
        self._resampler = Resampler(self.config.rate)
        self._audio = KeptAudio()
        self._vad: StreamingSilero | None = None
        self._turns: TurnDetector | None = None
        self._item: str | None = None  # the open turn's item
        self._previous_item: str | None = None
        self._stable = StablePrefix()
        self._turn_language: str | None = None  # identified by a partial, reused by the next ones
        # Identified on an earlier turn long enough to tell (a half-second "Hello" is not): when
        # no language is set, later turns are decoded in it instead of guessing again.
        self._session_language: str | None = None
        self._partial: asyncio.Task[None] | None = None
        self._partial_at = 0  # the turn's length when its last partial decode began
        self._finals = asyncio.Lock()  # completed events go out in the order turns were committed
        self._owed = 0  # committed turns whose completed (or failed) event has not gone out yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancel = CancelToken()
        self._start_vad()

    # --- client events ---

    async def start(self) -> None:
        await self._send(event("session.created", session=self.config.described(self.id, self._model)))

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        handlers = {
            "session.update": self._update,
            "transcription_session.update": self._update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit_requested,
            "input_audio_buffer.clear": self._clear,
        }
        handler = handlers.get(kind) if isinstance(kind, str) else None
        try:
            if handler is None:
                raise ProtocolError(
                    f"Unknown or unsupported event type {kind!r}: this server transcribes; it takes "
                    f"{', '.join(sorted(handlers))}.",
                    code="unknown_event",
                    param="type",
                )
            await handler(message)
        except ProtocolError as exc:
            await self._send(error(exc.message, code=exc.code, param=exc.param, event_id=message.get("event_id")))

    async def _update(self, message: dict[str, Any]) -> None:
        config = updated(self.config, message.get("session") or {})
        try:
            self._transcriber.model_id(config.model)
        except ModelNotFound as exc:
            raise ProtocolError(exc.message, code=exc.code, param="session.audio.input.transcription.model") from None
        config = await self._with_stored_clips(config)
        with refused_as_protocol_errors():
            final = turn_options(self._transcriber, config, partial=False)  # refuse what could not be decoded, now
        known_changed = _known(config) != _known(self.config)
        if known_changed:
            with refused_as_protocol_errors():  # a clip that is not 2-10 s of a voice
                known = await self._in_thread(self._transcriber.known_speakers, final)
        if config.rate != self.config.rate:
            if self._audio.uncommitted:
                raise ProtocolError(
                    "The input rate cannot change while audio is buffered: commit or clear it first.",
                    code="invalid_value",
                    param="session.audio.input.format.rate",
                )
            self._resampler = Resampler(config.rate)
        vad_changed = config.turn_detection != self.config.turn_detection
        if known_changed:
            self._speakers.set_known(known)
        self.config = config
        if vad_changed:
            await self._drop_turn()
            self._start_vad()
        await self._send(event("session.updated", session=config.described(self.id, self._model)))

    async def _with_stored_clips(self, config: LiveConfig) -> LiveConfig:
        """``config`` with the voice book's clips for the known speakers named without one."""
        names, clips = config.known_speaker_names, config.known_speaker_references
        missing = names_without_clips(names, clips)
        if not missing:
            return config
        stored = await self._in_thread(self._stored_voices, list(missing))
        completed = with_stored_clips(names, clips, stored)
        return config if completed is None else replace(config, known_speaker_references=completed)

    async def _in_thread(self, work: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)

    async def _append(self, message: dict[str, Any]) -> None:
        audio = message.get("audio")
        if not isinstance(audio, str):
            raise ProtocolError("`audio` must be base64 PCM16 text.", code="invalid_value", param="audio")
        try:
            pcm = pcm16_from_base64(audio)
        except BadAudio as exc:
            raise ProtocolError(str(exc), code="invalid_value", param="audio") from None
        if self._turns is None and self._audio.uncommitted / SAMPLE_RATE >= self._limits.max_buffer_s:
            raise ProtocolError(
                f"The input audio buffer holds {self._limits.max_buffer_s:.0f} s, its limit: commit or clear it.",
                code="input_audio_buffer_full",
            )
        samples = self._resampler(pcm)
        self._audio.append(samples)
        if self._turns is None or self._vad is None:
            return
        for change in self._turns.push(self._vad(samples)):
            if isinstance(change, TurnStarted):
                await self._turn_started(change)
            else:
                await self._turn_ended(change)
        if self._turns.turn_start is None:
            keep = self._turns.vad.prefix_padding_ms * SAMPLE_RATE // 1000 + 2 * FRAME
            self._audio.forget_before(self._audio.received - keep)
        else:
            self._maybe_partial()

    async def _commit_requested(self, message: dict[str, Any]) -> None:
        ended = self._turns.end_now() if self._turns is not None else None
        if ended is not None:
            await self._turn_ended(ended)
            return
        if self._audio.uncommitted / SAMPLE_RATE < _MIN_COMMIT_S:
            raise ProtocolError(
                f"The input audio buffer holds less than {_MIN_COMMIT_S * 1000:.0f} ms of audio: nothing to commit.",
                code="input_audio_buffer_commit_empty",
            )
        await self._commit(self._item or new_id("item"), self._audio.kept_from, self._audio.received)

    async def _clear(self, message: dict[str, Any]) -> None:
        await self._drop_turn()
        self._audio.forget_before(self._audio.received)
        await self._send(event("input_audio_buffer.cleared"))

    # --- turns ---

    async def _turn_started(self, started: TurnStarted) -> None:
        self._item = new_id("item")
        self._stable, self._turn_language, self._partial_at = StablePrefix(), None, 0
        await self._send(event("input_audio_buffer.speech_started", audio_start_ms=_ms(started.at), item_id=self._item))

    async def _turn_ended(self, ended: TurnEnded) -> None:
        item = self._item or new_id("item")
        await self._send(event("input_audio_buffer.speech_stopped", audio_end_ms=_ms(ended.speech_end), item_id=item))
        await self._commit(item, ended.start, ended.at)

    async def _commit(self, item: str, start: int, end: int) -> None:
        audio = self._audio.span(start, end)
        await self._send(event("input_audio_buffer.committed", item_id=item, previous_item_id=self._previous_item))
        self._previous_item, self._item = item, None
        self._audio.forget_before(end)
        stable, self._stable = self._stable, StablePrefix()
        self._owed += 1
        self._spawn(self._complete(item, audio, start / SAMPLE_RATE, stable))

    @property
    def owes_events(self) -> bool:
        """Whether a committed turn still waits for its completed (or failed) event: not idle."""
        return self._owed > 0

    async def _drop_turn(self) -> None:
        """Forget the open turn without transcribing it (a clear, or a new way of finding turns)."""
        if self._turns is not None:
            self._turns.end_now()
        self._item = None
        self._stable = StablePrefix()

    def _start_vad(self) -> None:
        vad = self.config.turn_detection
        if vad is None:
            self._vad, self._turns = None, None
            return
        self._vad = StreamingSilero()
        self._turns = TurnDetector(vad, _MAX_TURN_S, offset=self._audio.received)

    # --- decoding ---

    def _maybe_partial(self) -> None:
        turns = self._turns
        if self._partial is not None or turns is None or turns.turn_start is None:
            return
        length = self._audio.received - turns.turn_start
        due = length - self._partial_at >= self._limits.partial_interval_s * SAMPLE_RATE
        if not due or length < _MIN_PARTIAL_S * SAMPLE_RATE:
            return
        self._partial_at = length
        audio = self._audio.span(
            max(turns.turn_start, self._audio.received - int(_MAX_TURN_S * SAMPLE_RATE)), self._audio.received
        )
        self._partial = self._spawn(self._decode_partial(self._item, audio))

    async def _decode_partial(self, item: str | None, audio: np.ndarray) -> None:
        try:
            options = turn_options(
                self._transcriber, self.config, partial=True, language=self._turn_language or self._session_language
            )
            transcript = await self._run(audio, options, Urgency.PARTIAL)
        finally:
            self._partial = None
        if item is None or item != self._item:
            return  # the turn ended meanwhile: its final transcript speaks for it
        if transcript.duration >= _LANGUAGE_AFTER_S and self._turn_language is None:
            self._turn_language = transcript.language
        delta = self._stable.update(transcript.text)
        logger.debug("Partial of %s over %.1f s: %r -> %r", item, len(audio) / SAMPLE_RATE, transcript.text, delta)
        if delta:
            await self._send(transcription_delta(item, delta))

    async def _complete(self, item: str, audio: np.ndarray, offset_s: float, stable: StablePrefix) -> None:
        try:
            await self._complete_in_order(item, audio, offset_s, stable)
        finally:
            self._owed -= 1

    async def _complete_in_order(self, item: str, audio: np.ndarray, offset_s: float, stable: StablePrefix) -> None:
        async with self._finals:
            collected = CollectedLogprobs(self.config.logprobs)
            try:
                options = turn_options(self._transcriber, self.config, partial=False, language=self._session_language)
                transcript = await self._run(audio, options, Urgency.TURN, collected)
                if transcript.diarization.performed:
                    await self._in_thread(self._label_speakers, audio, transcript)
            except Exception as exc:
                if not isinstance(exc, ServiceError):
                    logger.exception("A live turn failed")
                await self._send(transcription_failed(item, exc))
                return
            if transcript.duration >= _LANGUAGE_AFTER_S and (transcript.language_probability or 0) >= 0.5:
                self._session_language = transcript.language
            rest = stable.finish(transcript.text)
            if rest:
                await self._send(transcription_delta(item, rest))
            await self._send(transcription_completed(item, transcript, offset_s, collected.entries))

    async def _run(
        self, audio: np.ndarray, options: ResolvedOptions, urgency: Urgency, listener: CollectedLogprobs | None = None
    ) -> Transcript:
        """One decode of a turn's audio, its windows ahead of queued file work (someone is
        waiting), a committed turn's ahead of partial decodes. Live work has threads of its own,
        so it never waits for one behind file requests."""
        work = partial(
            self._transcriber.transcribe_speech,
            audio,
            options,
            self._cancel.child(),
            urgency=urgency,
            listener=listener,
        )
        return await asyncio.get_running_loop().run_in_executor(self._threads, work)

    def _label_speakers(self, audio: np.ndarray, transcript: Transcript) -> None:
        voices = self._transcriber.voice_model()
        assert voices is not None, "the turn was diarized"
        self._speakers.label(audio, transcript, voices.embed, turn_threshold(voices.same_voice))

    # --- the end ---

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    async def finish(self, reason: str, within_s: float) -> None:
        """Before a server shutdown: transcribe the open turn, then say why the session ends.

        The transcribing gets ``within_s`` (what is left of the shutdown's grace); turns not
        done by then are cancelled (each gets its failed event if the cancel lands in time),
        and the session says goodbye all the same."""
        try:
            await asyncio.wait_for(self._transcribe_the_rest(), timeout=within_s)
        except TimeoutError:
            self._cancel.cancel("the server is shutting down")
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=CANCELLED_TURNS_SETTLE_S)
            for task in list(self._tasks):
                task.cancel()
            reason += " Turns not transcribed by the end of the shutdown's grace period were cancelled."
        await self._send(error(reason, code="server_shutting_down", kind="server_error"))

    async def _transcribe_the_rest(self) -> None:
        if self._turns is not None and (ended := self._turns.end_now()) is not None:
            await self._turn_ended(ended)
        elif self._turns is None and self._audio.uncommitted / SAMPLE_RATE >= _MIN_COMMIT_S:
            await self._commit(new_id("item"), self._audio.kept_from, self._audio.received)
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Stop everything this session started; drop its audio."""
        self._cancel.cancel("the live session closed")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        self._audio.drop()
        self._vad, self._turns = None, None


def _known(config: LiveConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return config.known_speaker_names, config.known_speaker_references


def _ms(sample: int) -> int:
    return sample * 1000 // SAMPLE_RATE


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None and not isinstance(exc, ServiceError):
        logger.error("A live session's task failed", exc_info=exc)
