// Runs on the browser's audio thread: the microphone, downsampled to 16 kHz mono PCM16, in
// 100 ms messages to the page (which sends them to /v1/realtime). Each output sample is the
// mean of the input samples around it: a box low-pass, enough for speech at 44.1/48 kHz.
"use strict";

const TARGET_RATE = 16000;
const CHUNK = TARGET_RATE / 10; // 100 ms

class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.pending = new Float32Array(0); // input not yet consumed
    this.position = 0; // where the next output sample falls in `pending`
    this.out = new Int16Array(CHUNK);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const input = new Float32Array(this.pending.length + channel.length);
    input.set(this.pending);
    input.set(channel, this.pending.length);
    const half = this.step / 2;
    let position = this.position;
    while (position + half < input.length) {
      const from = Math.max(0, Math.floor(position - half));
      const to = Math.min(input.length, Math.ceil(position + half));
      let sum = 0;
      for (let i = from; i < to; i += 1) sum += input[i];
      const value = Math.max(-1, Math.min(1, sum / Math.max(1, to - from)));
      this.out[this.filled] = value < 0 ? value * 0x8000 : value * 0x7fff;
      this.filled += 1;
      if (this.filled === CHUNK) {
        this.port.postMessage(this.out.buffer, [this.out.buffer]);
        this.out = new Int16Array(CHUNK);
        this.filled = 0;
      }
      position += this.step;
    }
    const keep = Math.max(0, Math.floor(position - half));
    this.pending = input.slice(keep);
    this.position = position - keep;
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
