"""kiln-server driven by the `openai` client (and raw HTTP for what the client
cannot send). Prints one line per check, "<name>: ok" or "FAIL: <name>: why".

usage: kiln_server_openai.py KILN_SERVER KILN_RUN MODEL.kiln
"""
import http.client
import json
import socket
import subprocess
import sys
import threading
import time

import openai

server_bin, run_bin, model = sys.argv[1:4]
MAX_SEQUENCES = 4
failures = 0


def check(name, ok, why=""):
    global failures
    if ok:
        print(f"{name}: ok", flush=True)
    else:
        failures += 1
        print(f"FAIL: {name}: {why}", flush=True)


proc = subprocess.Popen(
    [server_bin, "-m", model, "--port", "0", "-t", "2", "--max-sequences",
     str(MAX_SEQUENCES), "--ctx", "256", "--max-request-bytes", "65536",
     "--alias", "smollm2"],
    stderr=subprocess.PIPE, text=True)
for first in proc.stderr:
    if "listening on http://" in first:
        break
    print(first.strip(), flush=True)
else:
    print("FAIL: the server did not start", flush=True)
    sys.exit(1)
print(first.strip(), flush=True)
port = int(first.rsplit(":", 1)[1])
server_log = []
threading.Thread(target=lambda: server_log.extend(proc.stderr), daemon=True).start()

client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                       max_retries=0, timeout=120)


def raw(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def health():
    status, data = raw("GET", "/health")
    return status, json.loads(data)


def kiln_run(prompt, n, chat=False):
    cmd = [run_bin, "-m", model, "-p", prompt, "-n", str(n), "--temp", "0", "-t", "2"]
    if chat:
        cmd.append("--chat")
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def complete(prompt, n):
    r = client.completions.create(model="smollm2", prompt=prompt, max_tokens=n,
                                  temperature=0)
    return r.choices[0].text, r


try:
    status, h = health()
    check("health", status == 200 and h["status"] == "ok"
          and h["sequences"] == {"active": 0, "max": MAX_SEQUENCES}, str(h))
    ids = [m.id for m in client.models.list().data]
    check("models", ids == ["smollm2"], str(ids))

    # Greedy text equals kiln-run's (same tokenizer, sampler and model).
    prompt = "The capital of France is"
    text, r = complete(prompt, 16)
    expected = kiln_run(prompt, 16)
    check("completion equals kiln-run",
          text.rstrip("\n") == expected.rstrip("\n") and text.strip() != "",
          f"{text!r} vs {expected!r}")
    check("completion usage", r.usage.completion_tokens <= 16
          and r.usage.prompt_tokens > 1
          and r.choices[0].finish_reason in ("stop", "length"), str(r.usage))

    question = "What is the capital of France?"
    chat = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": question}],
        max_tokens=16, temperature=0)
    answer = chat.choices[0].message.content
    expected = kiln_run(question, 16, chat=True)
    check("chat equals kiln-run --chat",
          answer.rstrip("\n") == expected.rstrip("\n") and answer.strip() != ""
          and chat.choices[0].message.role == "assistant",
          f"{answer!r} vs {expected!r}")

    # Streaming sends the same text in pieces, then the finish reason.
    pieces, reasons = [], []
    for ev in client.completions.create(model="smollm2", prompt=prompt,
                                        max_tokens=16, temperature=0, stream=True):
        pieces.append(ev.choices[0].text)
        reasons.append(ev.choices[0].finish_reason)
    check("completion stream", "".join(pieces) == text and len(pieces) > 2
          and reasons[-1] in ("stop", "length"), f"{pieces!r}")
    pieces, reasons = [], []
    for ev in client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": question}],
            max_tokens=16, temperature=0, stream=True):
        pieces.append(ev.choices[0].delta.content or "")
        reasons.append(ev.choices[0].finish_reason)
    check("chat stream", "".join(pieces) == answer and len(pieces) > 2
          and reasons[-1] in ("stop", "length"), f"{pieces!r}")

    # Concurrent clients get what they get alone; a client past
    # --max-sequences is turned away while they run.
    prompts = ["Once upon a time", "The best way to learn Python is",
               "In 1969, astronauts", "def fibonacci(n):"]
    alone = [complete(p, 16)[0] for p in prompts]
    together = [None] * len(prompts)

    def worker(i):
        together[i] = complete(prompts[i], 16)[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    busy_status, peak = None, 0
    deadline = time.time() + 60
    while time.time() < deadline and any(t.is_alive() for t in threads):
        active = health()[1]["sequences"]["active"]
        peak = max(peak, active)
        if active == MAX_SEQUENCES and busy_status is None:
            busy_status, body = raw("POST", "/v1/completions",
                                    json.dumps({"prompt": "Hi", "max_tokens": 2}),
                                    {"Content-Type": "application/json"})
        time.sleep(0.01)
    for t in threads:
        t.join()
    check("4 concurrent clients equal sequential", together == alone,
          f"{together!r} vs {alone!r}")
    check("sequences overlapped", peak == MAX_SEQUENCES, f"peak {peak}")
    check("busy: 503", busy_status == 503, f"status {busy_status}")

    status, body = raw("POST", "/v1/completions", "{not json",
                       {"Content-Type": "application/json"})
    check("malformed JSON: 400", status == 400
          and "not valid JSON" in json.loads(body)["error"]["message"], body)
    status, body = raw("POST", "/v1/completions",
                       json.dumps({"prompt": "x" * 100000}),
                       {"Content-Type": "application/json"})
    check("huge body: 413", status == 413
          and "--max-request-bytes" in json.loads(body)["error"]["message"], body)
    try:
        client.completions.create(model="gpt-4", prompt="Hi", max_tokens=2)
        check("unknown model: 404", False, "no error")
    except openai.NotFoundError as e:
        check("unknown model: 404", "gpt-4" in str(e), str(e))
    try:
        client.completions.create(model="smollm2", prompt="Hi", max_tokens=1000)
        check("past the context: 400", False, "no error")
    except openai.BadRequestError as e:
        check("past the context: 400", "context of 256" in str(e), str(e))

    # A client that leaves mid-stream frees its sequence; the server goes on.
    sock = socket.create_connection(("127.0.0.1", port))
    body = json.dumps({"prompt": "1, 2, 3, 4, 5,", "max_tokens": 200,
                       "temperature": 0, "stream": True, "model": "smollm2"})
    sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                  f"\r\n{body}").encode())
    received = b""
    while b"data: " not in received:
        received += sock.recv(4096)
    sock.close()
    deadline = time.time() + 30
    while time.time() < deadline and health()[1]["sequences"]["active"] != 0:
        time.sleep(0.05)
    freed = [l for l in server_log if "the client disconnected" in l]
    check("disconnect frees the sequence",
          health()[1]["sequences"]["active"] == 0 and len(freed) == 1, str(freed))
    check("server up after disconnect", complete(prompt, 16)[0] == text)
finally:
    client.close()  # an idle keep-alive connection would delay the shutdown
    proc.terminate()
    proc.wait(timeout=30)
print(f"{failures} failures")
sys.exit(1 if failures else 0)
