"""llama.cpp (llama-cpp-python) as the tests' peer, run in a child process.

llama.cpp crashes in some configurations (on Intel Xeons with AMX its default
extra buffer types select the AMX repack path, and `llama_decode` segfaults on
the packaged models). In-process, such a crash takes the test script down and
its pipe to FileCheck looks empty. Here every call goes to a child process; a
child that dies raises PeerCrashed naming the signal, the call and the peer's
settings, so a crash is a failure that says what happened.

Extra buffer types (llama.cpp's CPU weight repacking, `use_extra_bufts`) are
on by default and off on CPUs with AMX, where they crash; the environment
variable KILN_PEER_EXTRA_BUFTS=on|off|auto overrides the choice. Every script
prints `settings()` next to its figures.
"""

import multiprocessing
import os
import signal

import numpy as np

from host_cpu import cpu_flags


def has_amx():
    return bool({"amx_tile", "amx_int8", "amx_bf16"} & cpu_flags())


def extra_bufts():
    """Whether llama.cpp runs with its extra buffer types (its default)."""
    choice = os.environ.get("KILN_PEER_EXTRA_BUFTS", "auto")
    if choice not in ("on", "off", "auto"):
        raise ValueError("KILN_PEER_EXTRA_BUFTS must be on, off or auto, not %r" % choice)
    if choice == "auto":
        return not has_amx()
    return choice == "on"


def settings(extra=None):
    extra = extra_bufts() if extra is None else extra
    why = "forced by KILN_PEER_EXTRA_BUFTS" if os.environ.get("KILN_PEER_EXTRA_BUFTS", "auto") != "auto" \
        else "AMX CPU: llama.cpp's repack path crashes there" if has_amx() else "llama.cpp's default"
    return "extra buffer types %s (%s)" % ("on" if extra else "off", why)


class PeerCrashed(RuntimeError):
    pass


def signal_name(code):
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return "signal %d" % -code
    return "exit status %s" % code


def _detokenize_cleaned(llm, ids):
    """llama.cpp's llama_detokenize, dropping the BOS/EOS the vocabulary adds
    and rendering special tokens. (Llama.detokenize only joins pieces, so it
    skips the clean-up of spaces before punctuation.)"""
    import ctypes
    import llama_cpp
    arr = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
    size = 64 + 64 * len(ids)
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(llm._model.vocab, arr, len(ids), buf, size, True, True)
    assert 0 <= n <= size, n
    return buf.raw[:n]


def _serve(conn, model_path, kwargs, extra):
    import llama_cpp
    import llama_cpp.llama_cpp as lib

    default_params = lib.llama_model_default_params

    def params():
        p = default_params()
        p.use_extra_bufts = extra
        return p

    # Llama() takes no use_extra_bufts argument; it starts from these defaults.
    lib.llama_model_default_params = params
    llm = llama_cpp.Llama(model_path=model_path, verbose=False, **kwargs)
    assert bool(llm.model_params.use_extra_bufts) == extra, "use_extra_bufts did not take"
    conn.send(("ok", dict(llm.metadata)))
    crash_at = os.environ.get("KILN_PEER_CRASH_TEST")  # the crash test's hook
    while True:
        try:
            method, args = conn.recv()
        except EOFError:
            return
        if method == crash_at:
            os.kill(os.getpid(), signal.SIGSEGV)
        try:
            if method == "eval":
                llm.eval(args[0])
                result = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            elif method == "tokenize":
                result = llm.tokenize(*args[0:1], **args[1])
            elif method == "detokenize":
                result = llm.detokenize(args[0])
            elif method == "detokenize_cleaned":
                result = _detokenize_cleaned(llm, args[0])
            elif method == "reset":
                result = llm.reset()
            else:
                raise ValueError("unknown peer call %r" % method)
            conn.send(("ok", result))
        except Exception as e:  # reported to the caller as it is
            conn.send(("error", "%s: %s" % (type(e).__name__, e)))


class LlamaPeer:
    """llama_cpp.Llama(model_path, **kwargs) in a child process. eval()
    returns the last position's logits (float64)."""

    def __init__(self, model_path, **kwargs):
        self.extra = extra_bufts()
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, model_path, kwargs, self.extra), daemon=True)
        self.proc.start()
        child.close()
        self.metadata = self._receive("loading the model")

    def settings(self):
        return settings(self.extra)

    def _receive(self, what):
        try:
            status, value = self.conn.recv()
        except (EOFError, ConnectionResetError):
            self.proc.join(10)
            raise PeerCrashed("llama.cpp crashed (%s) %s, with %s" % (
                signal_name(self.proc.exitcode), what, self.settings())) from None
        if status != "ok":
            raise RuntimeError("llama.cpp %s: %s" % (what, value))
        return value

    def _call(self, method, *args):
        try:
            self.conn.send((method, args))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child is gone: _receive says how it ended
        return self._receive("in %s()" % method)

    def eval(self, tokens):
        return self._call("eval", list(tokens))

    def tokenize(self, text, **kwargs):
        return self._call("tokenize", text, kwargs)

    def detokenize(self, ids):
        """Llama.detokenize: the tokens' pieces joined."""
        return self._call("detokenize", list(ids))

    def detokenize_cleaned(self, ids):
        """llama_detokenize: specials rendered, BOS/EOS dropped, spaces
        cleaned up as the vocabulary asks."""
        return self._call("detokenize_cleaned", list(ids))

    def reset(self):
        return self._call("reset")

    def close(self):
        self.conn.close()
        self.proc.join(10)
