"""STAND-IN for `trtllm-serve` (glm5_hpc test/demo equipment). Not TensorRT-LLM.

Behaves like the real server where glm5_hpc depends on it: the real flags; no listener while the
model loads; CUDA-graph warmup lines counting down from --max_batch_size; then uvicorn's
`Application startup complete.` and the real endpoints. It answers coherently only when every
recipe step was done, and with repetitive gibberish otherwise.

Environment knobs (test equipment only):
  GLM5_STANDIN_LOAD_S         seconds of "model load" before warmup (default 3)
  GLM5_STANDIN_WARMUP_STEP_S  seconds per warmup batch size (default 0.01)
  Serving capacity (all 0 by default: answers at once). At most --max_batch_size sequences run at
  once; more requests wait in a queue. A request takes PREFILL_S per prompt word, then
  DECODE_S per output token, each step longer by DECODE_GROWTH for every other running sequence.
  A token is a word. Completions and chat completions stream (SSE, "stream": true) one event per
  token as it is decoded; ignore_eos (or min_tokens) makes an answer exactly max_tokens long;
  every answer reports its usage (prompt and completion tokens).
  GLM5_STANDIN_PREFILL_S      seconds per prompt word (default 0)
  GLM5_STANDIN_DECODE_S       seconds per output token of a sequence running alone (default 0)
  GLM5_STANDIN_DECODE_GROWTH  added to the decode step, as a fraction, per other running sequence (default 0)
  GLM5_STANDIN_FAULT          one failure mode (default: none):
                              crash_after_ready:S  exit 134 S seconds after startup completes
                              hang_after_ready:S   accept connections but never answer, from S seconds after startup
                              hang                 accept connections but never answer, from the start
                              health_503           /health answers 503
                              load_hang            stop during model load, printing nothing more
                              empty                answer every completion with no tokens
A server across nodes (started by trtllm-llmapi-launch under srun) waits for all its ranks before
loading and ends when one is lost: tensorrt_llm/llmapi/world.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tensorrt_llm.llmapi.world import World

BUILD_INFO = Path(__file__).resolve().parent.parent / "_build_info.json"
COHERENT = {
    "The capital of France is": " Paris. Paris is the largest city in France and the seat of its government,"
    " known for the Eiffel Tower, the Louvre and the river Seine.",
}
# trtllm-serve obeys these without authentication (FACTS.md); the stand-in obeys nothing but records
# every call in its log, so tests can show that none reaches it through glm5_hpc's router or gateway.
CONTROL_ROUTES = ("/update_weights", "/release_memory", "/resume_memory", "/kv_cache_events")
CONTROL_LOG = "control route called:"
COHERENT_DEFAULT = " a question the model answers in plain, well-formed English sentences."


def log(msg: str) -> None:
    print(f"[STAND-IN] {time.strftime('%H:%M:%S')} {msg}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="trtllm-serve", description="[STAND-IN] trtllm-serve")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("model")
    s.add_argument("--host", default="localhost")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--backend", default="pytorch")
    s.add_argument("--tp_size", type=int, default=1)
    s.add_argument("--pp_size", type=int, default=1)
    s.add_argument("--ep_size", type=int, default=None)
    s.add_argument("--max_batch_size", type=int, default=2048)
    s.add_argument("--max_num_tokens", type=int, default=8192)
    s.add_argument("--max_seq_len", type=int, default=None)
    s.add_argument("--trust_remote_code", action="store_true")
    s.add_argument("--log_level", default="info")
    s.add_argument("--extra_llm_api_options", "--config", dest="extra_llm_api_options", default=None)
    return p.parse_args(argv)


def recipe_problems(model: Path, extra: dict[str, Any]) -> list[str]:
    """What makes the real stack produce gibberish, as the recipe explains it."""
    problems = []
    cfg = json.loads((model / "config.json").read_text())
    build = build_info()
    mapped = cfg.get("architectures") == ["DeepseekV32ForCausalLM"] and cfg.get("model_type") == "deepseek_v32"
    native = build.get("native_glm5") and cfg.get("architectures") == ["GlmMoeDsaForCausalLM"]
    if not (mapped or native):
        problems.append("config.json is not mapped to DeepseekV32ForCausalLM: context attention falls back to unfused MHA")
    if cfg.get("rope_theta") != 1000000 and not native:
        problems.append("config.json has no top-level rope_theta 1000000")
    if build.get("context_head_size_v") != "v_head_dim":
        problems.append("attention kernels built with headSizeV = qk_nope_head_dim (192 != v_head_dim 256)")
    if build.get("context_fmha_unsupported") != "warn":
        problems.append("attention kernels built with the FMHA context assertion")
    sparse = extra.get("sparse_attention_config") or {}
    if sparse.get("algorithm") != "dsa" and not native:  # native GLM-5 reads its DSA parameters from config.json
        problems.append("no DSA sparse_attention_config: context attention not in absorption mode")
    return problems


def build_info() -> dict[str, Any]:
    return json.loads(BUILD_INFO.read_text()) if BUILD_INFO.exists() else {}


def check_tokenizer(model: Path) -> None:
    if build_info().get("native_glm5"):
        return  # a release that serves GLM-5 natively ships a tokenizer stack that reads its config as is
    tok = json.loads((model / "tokenizer_config.json").read_text())
    if tok.get("tokenizer_class") == "TokenizersBackend":
        raise SystemExit("ValueError: Tokenizer class TokenizersBackend does not exist or is not currently imported.")
    if isinstance(tok.get("extra_special_tokens"), list):
        raise SystemExit("AttributeError: 'list' object has no attribute 'keys'")


def check_flashinfer(model: Path) -> None:
    try:
        from flashinfer.mla import _check_trtllm_gen_mla_shape
    except ImportError:
        return
    cfg = json.loads((model / "config.json").read_text())
    _check_trtllm_gen_mla_shape(cfg["qk_nope_head_dim"], cfg["kv_lora_rank"], cfg["qk_rope_head_dim"])


def gibberish(max_tokens: int) -> list[str]:
    words = [" the", " the", " of", ",", " the", " and", " the"]
    return [words[i % len(words)] for i in range(max_tokens)]


def complete(prompt: str, max_tokens: int, coherent: bool, full_length: bool = False) -> list[str]:
    """The answer's tokens (a token is a word here): the natural answer cut at max_tokens, or, with
    ignore_eos / min_tokens, exactly max_tokens (the answer repeated), as a benchmark asks for."""
    if not coherent:
        return gibberish(max_tokens)
    words = [" " + w for w in COHERENT.get(prompt.strip(), COHERENT_DEFAULT).split()]
    if full_length:
        return [words[i % len(words)] for i in range(max_tokens)]
    return words[:max_tokens]


class Engine:
    """The serving capacity: a batch of at most max_batch_size sequences, a queue beyond it."""

    def __init__(self, max_batch_size: int) -> None:
        self.slots = threading.BoundedSemaphore(max_batch_size)
        self.lock = threading.Lock()
        self.running = 0
        self.prefill_s = float(os.environ.get("GLM5_STANDIN_PREFILL_S", "0"))
        self.decode_s = float(os.environ.get("GLM5_STANDIN_DECODE_S", "0"))
        self.growth = float(os.environ.get("GLM5_STANDIN_DECODE_GROWTH", "0"))

    def steps(self, prompt: str, tokens: int) -> Iterator[int]:
        """Yield each token's index once it is decoded, holding a batch slot from the prompt's prefill
        to the last token; a client that goes away (the generator closed) frees its slot."""
        if not (self.prefill_s or self.decode_s):
            yield from range(tokens)
            return
        with self.slots:
            with self.lock:
                self.running += 1
            try:
                time.sleep(self.prefill_s * len(prompt.split()))
                for i in range(tokens):
                    time.sleep(self.decode_s * (1 + self.growth * (self.running - 1)))
                    yield i
            finally:
                with self.lock:
                    self.running -= 1


class State:
    def __init__(self, model_id: str, coherent: bool, fault: str, engine: Engine) -> None:
        self.model_id = model_id
        self.coherent = coherent
        self.fault = fault
        self.engine = engine
        self.ready_at = time.monotonic()

    def hanging(self) -> bool:
        if self.fault == "hang":
            return True
        if self.fault.startswith("hang_after_ready:"):
            return time.monotonic() - self.ready_at >= float(self.fault.split(":", 1)[1])
        return False


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            print(f'INFO:     {self.client_address[0]} - "{self.requestline}" {args[1] if len(args) > 1 else ""}', flush=True)

        def send(self, code: int, body: Any = None, ctype: str = "application/json") -> None:
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def hang_if_asked(self) -> bool:
            if state.hanging():
                time.sleep(3600)
                return True
            return False

        def control(self) -> bool:
            if self.path.split("?")[0] not in CONTROL_ROUTES:
                return False
            log(f"{CONTROL_LOG} {self.command} {self.path}")
            self.send(200, {"status": "recorded by the stand-in; nothing done"})
            return True

        def do_GET(self) -> None:
            if self.hang_if_asked() or self.control():
                return
            if self.path == "/health":
                self.send(503 if state.fault == "health_503" else 200)
            elif self.path == "/health_generate":
                self.send(200, b"Generation health check OK", "text/plain")
            elif self.path == "/version":
                self.send(200, {"version": f"{build_info().get('version', 'unknown')} (stand-in)"})
            elif self.path == "/v1/models":
                models = [{"id": state.model_id, "object": "model", "owned_by": "tensorrt_llm"}]
                self.send(200, {"object": "list", "data": models})
            elif self.path == "/metrics":
                self.send(200, [])
            else:
                self.send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            if self.hang_if_asked() or self.control():
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                req = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self.send(400, {"detail": "invalid JSON"})
                return
            chat = self.path == "/v1/chat/completions"
            if not chat and self.path != "/v1/completions":
                self.send(404, {"detail": "Not Found"})
                return
            self.generate(req, chat)

        def generate(self, req: dict[str, Any], chat: bool) -> None:
            max_tokens = int(req.get("max_completion_tokens") or req.get("max_tokens") or 16)
            full = bool(req.get("ignore_eos")) or int(req.get("min_tokens") or 0) >= max_tokens
            if chat:
                msgs = req.get("messages") or [{}]
                prompt, last = " ".join(str(m.get("content", "")) for m in msgs), str(msgs[-1].get("content", ""))
            else:
                prompt = last = str(req.get("prompt", ""))
            tokens = [] if state.fault == "empty" else complete(last, max_tokens, state.coherent, full)
            usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(tokens),
                     "total_tokens": len(prompt.split()) + len(tokens)}  # fmt: skip
            finish = "length" if len(tokens) == max_tokens else "stop"
            name = f"{'chatcmpl' if chat else 'cmpl'}-{time.time_ns()}"
            head = {"id": name, "created": int(time.time()), "model": state.model_id}
            steps = state.engine.steps(prompt, len(tokens))
            if not req.get("stream"):
                for _ in steps:
                    pass
                text = "".join(tokens)
                choice = {"index": 0, "message": {"role": "assistant", "content": text}} if chat else {"index": 0, "text": text}
                kind = "chat.completion" if chat else "text_completion"
                self.send(200, {**head, "object": kind, "choices": [{**choice, "finish_reason": finish}], "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            kind = "chat.completion.chunk" if chat else "text_completion"

            def event(choices: list[dict[str, Any]], **more: Any) -> None:
                self.chunk(b"data: " + json.dumps({**head, "object": kind, "choices": choices, **more}).encode() + b"\n\n")

            try:
                for i in steps:
                    part: dict[str, Any] = {"content": tokens[i]} if chat else {"text": tokens[i]}
                    if chat and i == 0:
                        part["role"] = "assistant"
                    done = finish if i == len(tokens) - 1 else None
                    event([{"index": 0, **({"delta": part} if chat else part), "finish_reason": done}])
                if not tokens:
                    event([{"index": 0, **({"delta": {"role": "assistant", "content": ""}} if chat else {"text": ""}),
                            "finish_reason": "stop"}])  # fmt: skip
                if (req.get("stream_options") or {}).get("include_usage"):
                    event([], usage=usage)
                self.chunk(b"data: [DONE]\n\n")
                self.chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                steps.close()  # the client went away: its batch slot is free again

        def chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")

    return Handler


def serve(args: argparse.Namespace) -> int:
    model = Path(args.model)
    log(f"trtllm-serve stand-in (glm5_hpc test/demo equipment, not TensorRT-LLM) model={model} tp_size={args.tp_size}")
    extra: dict[str, Any] = {}
    if args.extra_llm_api_options:
        extra = yaml.safe_load(Path(args.extra_llm_api_options).read_text()) or {}
    for name in ("HF_TOKEN", "NGC_API_KEY"):
        if os.environ.get(name):
            log(f"{name}: set ({len(os.environ[name])} characters)")
    check_tokenizer(model)
    fault = os.environ.get("GLM5_STANDIN_FAULT", "")
    world = World()
    if world.size > 1:
        if world.size != args.tp_size * args.pp_size:
            raise SystemExit(f"RuntimeError: MPI world size {world.size} != tp_size {args.tp_size} * pp_size {args.pp_size}")
        world.join()
        world.wait_all()
        log(f"all {world.size} ranks joined")
        world.end_when_lost(range(1, world.size))
    log(f"Loading model weights ({os.environ.get('GLM5_STANDIN_LOAD_S', '3')} s)")
    if fault == "load_hang":
        log(f"fault injected: {fault}")
        threading.Event().wait()
    time.sleep(float(os.environ.get("GLM5_STANDIN_LOAD_S", "3")))
    check_flashinfer(model)
    step = float(os.environ.get("GLM5_STANDIN_WARMUP_STEP_S", "0.01"))
    print(f"Creating CUDA graph instances for {args.max_batch_size} batch sizes.", flush=True)
    for bs in range(args.max_batch_size, 0, -1):
        seq = args.max_seq_len or 8192
        print(f"Run generation-only CUDA graph warmup for batch size={bs}, draft_len=0, max_seq_len={seq}", flush=True)
        time.sleep(step)
    problems = recipe_problems(model, extra)
    for p in problems:
        log(f"WARNING (simulated numerics): {p}")
    state = State(model.name, coherent=not problems, fault=fault, engine=Engine(args.max_batch_size))
    if fault:
        log(f"fault injected: {fault}")
    ThreadingHTTPServer.request_queue_size = 2048  # uvicorn's backlog; socketserver's 5 drops connections under load
    httpd = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    httpd.daemon_threads = True
    print("INFO:     Started server process", flush=True)
    print("INFO:     Waiting for application startup.", flush=True)
    print("INFO:     Application startup complete.", flush=True)
    if fault.startswith("crash_after_ready:"):
        delay = float(fault.split(":", 1)[1])
        threading.Timer(delay, lambda: (log("simulated crash"), os._exit(134))).start()
    httpd.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
