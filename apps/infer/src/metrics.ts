// Prometheus metrics of the server (prom-client, one registry per server): requests by endpoint and status,
// prompt and generated tokens, time to first token, inter-token latency and end-to-end latency histograms, and
// the engine's running / waiting sequences. Names follow vLLM's (prefix farskip_ instead of vllm:).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'farskip_requests_total', help: 'HTTP requests by endpoint and status code', labelNames: ['endpoint', 'status'] as const, registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'farskip_prompt_tokens_total', help: 'prompt tokens prefilled', registers: [this.registry] });
  readonly generationTokens = new Counter({ name: 'farskip_generation_tokens_total', help: 'tokens generated', registers: [this.registry] });
  readonly finished = new Counter({ name: 'farskip_request_success_total', help: 'finished sequences by finish reason', labelNames: ['finished_reason'] as const, registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'farskip_time_to_first_token_seconds', help: 'time from arrival to the first generated token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly interToken = new Histogram({ name: 'farskip_inter_token_latency_seconds', help: 'time between consecutive generated tokens of a sequence', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly e2e = new Histogram({ name: 'farskip_e2e_request_latency_seconds', help: 'time from arrival to the last token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly running: Gauge;
  readonly waiting: Gauge;
  readonly rejected = new Counter({ name: 'farskip_requests_rejected_total', help: 'requests refused because the queue was full (429)', registers: [this.registry] });

  constructor(engineState: () => { running: number; waiting: number }) {
    // sampled when scraped
    this.running = new Gauge({ name: 'farskip_num_requests_running', help: 'sequences in the decode batch', registers: [this.registry], collect() { this.set(engineState().running); } });
    this.waiting = new Gauge({ name: 'farskip_num_requests_waiting', help: 'sequences waiting for a slot', registers: [this.registry], collect() { this.set(engineState().waiting); } });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
