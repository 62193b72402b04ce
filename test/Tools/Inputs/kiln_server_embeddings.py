"""kiln-server's /v1/embeddings on an encoder, through the `openai` client:
the vectors equal kiln-run --embed's bit for bit; completions are refused.
Prints one line per check, "<name>: ok" or "FAIL: <name>: why".

usage: kiln_server_embeddings.py KILN_SERVER KILN_RUN MODEL.kiln
"""
import subprocess
import sys

import numpy as np
import openai

server_bin, run_bin, model = sys.argv[1:4]
failures = 0


def check(name, ok, why=""):
    global failures
    if ok:
        print(f"{name}: ok", flush=True)
    else:
        failures += 1
        print(f"FAIL: {name}: {why}", flush=True)


proc = subprocess.Popen([server_bin, "-m", model, "--port", "0", "-t", "2", "--alias", "minilm"],
                        stderr=subprocess.PIPE, text=True)
for line in proc.stderr:
    if "listening on http://" in line:
        break
else:
    print("FAIL: the server did not start", flush=True)
    sys.exit(1)
port = int(line.rsplit(":", 1)[1])
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0,
                       timeout=60)
try:
    texts = ["The cat sits on the mat.", "A completely different sentence about taxes."]
    r = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    got = [np.array(d.embedding, dtype=np.float32) for d in r.data]
    out = subprocess.run([run_bin, "-m", model, "-t", "2", "--embed", texts[0]],
                         capture_output=True, text=True, check=True).stdout
    want = np.array([float(x) for x in out.split()], dtype=np.float32)
    check("embedding equals kiln-run --embed", got[0].shape == want.shape
          and np.array_equal(got[0], want), f"{got[0][:4]} vs {want[:4]}")
    check("two inputs, two vectors", len(got) == 2 and not np.array_equal(got[0], got[1])
          and r.usage.prompt_tokens > 4, str(r.usage))
    try:
        client.completions.create(model="minilm", prompt="Hi", max_tokens=2)
        check("completion on an encoder: 400", False, "no error")
    except openai.BadRequestError as e:
        check("completion on an encoder: 400", "encoder" in str(e), str(e))
finally:
    client.close()  # an idle keep-alive connection would delay the shutdown
    proc.terminate()
    proc.wait(timeout=30)
print(f"{failures} failures")
sys.exit(1 if failures else 0)
