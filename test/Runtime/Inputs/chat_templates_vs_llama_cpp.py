#!/usr/bin/env python3
"""Kiln's chat prompt (kiln-tokenize-driver --chat) against llama.cpp's
llama_chat_apply_template for one user turn, for each family's template:
ChatML (Qwen2/Qwen3), Llama 2 (plain and stripping), Llama 3, Mistral v1,
v3, v3 Tekken and v7, Phi-3 and Gemma. Each template is an excerpt of the
family's Jinja template holding the markers llama.cpp detects it by.

usage: chat_templates_vs_llama_cpp.py DRIVER WORKDIR
"""
import ctypes
import json
import os
import subprocess
import sys

TEMPLATES = {
    "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
              "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
    "llama2": "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + "
              "' [/INST]' }}{% endif %}",
    "llama2-strip": "{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}",
    "llama3": "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
              "message['content'] | trim + '<|eot_id|>' }}",
    "mistral-v1": "{{ ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}",
    "mistral-v3": "{{ '[AVAILABLE_TOOLS] [' }}{{ '[INST] ' + message['content'] + '[/INST]' }}",
    "mistral-v3-tekken": "{{ '[AVAILABLE_TOOLS][' }}{{ \"[INST]\" + message['content'] + \"[/INST]\" }}",
    "mistral-v7": "{{ '[SYSTEM_PROMPT] ' + system_message + '[/SYSTEM_PROMPT]' }}"
                  "{{ '[INST] ' + message['content'] + '[/INST]' }}",
    "phi3": "{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + '<|end|>\\n' }}"
            "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
    "gemma": "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}",
}
MESSAGES = ["hi there", "  padded message \n", "line one\nline two"]


def llama_cpp_prompt(template, message):
    import llama_cpp
    chat = (llama_cpp.llama_chat_message * 1)()
    chat[0].role = b"user"
    chat[0].content = message.encode()
    size = 4096
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_chat_apply_template(template.encode(), chat, 1, True, buf, size)
    if n < 0:
        return None
    return buf.raw[:n].decode()


def main():
    driver, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    failures = 0
    for name, template in TEMPLATES.items():
        # The smallest vocabulary the driver accepts, with this template.
        vocab = {"model": "gpt2", "pre": "gpt-2", "tokens": ["a", "b"], "token_types": [1, 1],
                 "merges": [], "bos_id": None, "eos_id": None, "eot_id": None, "unk_id": None,
                 "pad_id": None, "chat_template": template}
        path = os.path.join(workdir, name + ".vocab.json")
        with open(path, "w") as f:
            json.dump(vocab, f)
        proc = subprocess.run([driver, "--chat", path],
                              input="".join(json.dumps(m) + "\n" for m in MESSAGES).encode(),
                              capture_output=True)
        if proc.returncode != 0:
            sys.exit("kiln-tokenize-driver failed: " + proc.stderr.decode())
        results = [json.loads(l) for l in proc.stdout.decode().splitlines()[1:]]
        bad = 0
        for message, got in zip(MESSAGES, results):
            want = llama_cpp_prompt(template, message)
            if not got["ok"] or got["text"] != want:
                bad += 1
                print("MISMATCH [%s] %r\n  kiln:      %r\n  llama.cpp: %r" % (
                    name, message, got.get("text", got.get("error")), want))
        print("%s: %d prompts, %d differences" % (name, len(MESSAGES), bad))
        failures += bad
    if failures:
        sys.exit("%d differences from llama.cpp" % failures)
    print("PASS")


if __name__ == "__main__":
    main()
